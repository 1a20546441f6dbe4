//! Reading the `image` field of a `multipart/form-data` upload, within a size limit.
//!
//! The limit is enforced three times, each for a case the others miss: the declared
//! `Content-Length` before reading anything, a cap on the raw body stream (chunked uploads
//! declare no length), and multer's per-field limit (the image itself).

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, BodyStream, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;

use super::error::ApiError;

/// Room for multipart boundaries, headers and small extra fields around the image.
const ENVELOPE: u64 = 64 * 1024;

const USAGE: &str =
    "expected a multipart/form-data body with the image in a file field named `image`";

/// Reads the `image` field of `req`, refusing images larger than `max_image` bytes.
pub async fn read_image(req: Request<Incoming>, max_image: u64) -> Result<Bytes, ApiError> {
    let max_body = max_image.saturating_add(ENVELOPE);
    let too_large = ApiError::TooLarge { limit: max_image };
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::BadRequest(USAGE.into()))?;
    let boundary =
        multer::parse_boundary(content_type).map_err(|_| ApiError::BadRequest(USAGE.into()))?;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(too_large);
    }

    let limited = Limited::new(
        req.into_body(),
        usize::try_from(max_body).unwrap_or(usize::MAX),
    );
    let stream =
        BodyStream::new(limited).try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(max_body)
            .for_field("image", max_image),
    );
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);

    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => {
                return Err(ApiError::BadRequest(
                    "no `image` field in the multipart body".into(),
                ))
            }
            Err(e) => return Err(map_err(e, max_image)),
        };
        if field.name() == Some("image") {
            return field.bytes().await.map_err(|e| map_err(e, max_image));
        }
        // Other fields are ignored, but must be read past (still under the body limit).
        let mut field = field;
        while field
            .chunk()
            .await
            .map_err(|e| map_err(e, max_image))?
            .is_some()
        {}
    }
}

fn map_err(e: multer::Error, max_image: u64) -> ApiError {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            ApiError::TooLarge { limit: max_image }
        }
        multer::Error::StreamReadFailed(inner) => {
            if inner.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::TooLarge { limit: max_image }
            } else {
                // The client went away or sent a broken body.
                ApiError::BadRequest(format!("could not read the upload: {inner}"))
            }
        }
        other => ApiError::BadRequest(format!("malformed multipart body: {other}")),
    }
}

/// Drains a request body we do not need (bounded, so it cannot be used to stall us).
pub async fn discard(req: Request<Incoming>) {
    let _ = Limited::new(req.into_body(), 64 * 1024).collect().await;
}
