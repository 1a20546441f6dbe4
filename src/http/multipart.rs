//! Reading the `image` field of a `multipart/form-data` upload, within a size limit.
//!
//! The limit is enforced three times, each for a case the others miss: the declared
//! `Content-Length` before reading anything, a cap on the raw body stream (chunked uploads
//! declare no length), and multer's per-field limit (the image itself).

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http_body_util::{BodyExt, BodyStream, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;

use super::error::ApiError;

/// Room for multipart boundaries, headers and small extra fields around the image.
const ENVELOPE: u64 = 64 * 1024;

/// Bytes of an oversized upload we are still willing to read and discard (see [`linger`]).
const LINGER_MIN: u64 = 16 << 20;

const USAGE: &str =
    "expected a multipart/form-data body with the image in a file field named `image`";

/// Reads the `image` field of `req`, refusing images larger than `max_image` bytes.
pub async fn read_image(req: Request<Incoming>, max_image: u64) -> Result<Bytes, ApiError> {
    let max_body = max_image.saturating_add(ENVELOPE);
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
    let mut body = req.into_body();
    let result = if declared.is_some_and(|n| n > max_body) {
        Err(ApiError::TooLarge { limit: max_image })
    } else {
        read_field(&mut body, boundary, max_image, max_body).await
    };
    if result.is_err() {
        linger(&mut body, max_body.max(LINGER_MIN)).await;
    }
    result
}

/// Reads the `image` field from a body of at most `max_body` bytes.
async fn read_field(
    body: &mut Incoming,
    boundary: String,
    max_image: u64,
    max_body: u64,
) -> Result<Bytes, ApiError> {
    let limited = Limited::new(body, usize::try_from(max_body).unwrap_or(usize::MAX));
    let stream =
        BodyStream::new(limited).try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
    parse_stream(stream, boundary, max_image, max_body).await
}

/// The parsing [`read_image`] does once the headers are checked, on any byte stream: the
/// `Content-Type` header value and the body's chunks. For the fuzz target (`fuzz/`) and tests,
/// which have no hyper request.
pub async fn parse_image<S, E>(
    content_type: &str,
    body: S,
    max_image: u64,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let boundary =
        multer::parse_boundary(content_type).map_err(|_| ApiError::BadRequest(USAGE.into()))?;
    parse_stream(
        body,
        boundary,
        max_image,
        max_image.saturating_add(ENVELOPE),
    )
    .await
}

/// Reads the `image` field from a multipart stream of at most `max_body` bytes.
async fn parse_stream<S, E>(
    stream: S,
    boundary: String,
    max_image: u64,
    max_body: u64,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(max_body)
            .for_field("image", max_image),
    );
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);

    let mut image = None;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return Err(map_err(e, max_image)),
        };
        if field.name() == Some("image") {
            if image.is_some() {
                return Err(ApiError::BadRequest(
                    "more than one `image` field; send one image per request".into(),
                ));
            }
            image = Some(field.bytes().await.map_err(|e| map_err(e, max_image))?);
            continue;
        }
        // Other fields are ignored, but read past (still under the body limit).
        while field
            .chunk()
            .await
            .map_err(|e| map_err(e, max_image))?
            .is_some()
        {}
    }
    // The whole body is read before answering: a reply sent while the client is still
    // uploading makes many clients report a broken pipe instead of our answer.
    image.ok_or_else(|| ApiError::BadRequest("no `image` field in the multipart body".into()))
}

/// Reads and discards up to `cap` more bytes (for at most a few seconds) before an error is
/// sent. Closing a socket with unread input makes the kernel reset the connection, and most
/// clients then report "broken pipe" instead of our answer; modest overshoots get a readable
/// error, huge ones are cut off.
async fn linger(body: &mut Incoming, cap: u64) {
    let drain = async {
        let mut seen: u64 = 0;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > cap {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
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

/// Drains (up to `cap` bytes) the body of a request refused without reading it; see [`linger`].
pub async fn discard(req: Request<Incoming>, cap: u64) {
    let mut body = req.into_body();
    linger(&mut body, cap).await;
}
