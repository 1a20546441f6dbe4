//! Bytes → upright RGB pixels, with limits checked from the header before any pixel is decoded.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// Formats we accept. Anything else is rejected before decoding.
const ACCEPTED: &[ImageFormat] = &[
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Bmp,
    ImageFormat::Tiff,
    ImageFormat::WebP,
    ImageFormat::Gif,
];

/// Bounds on what one image may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted width × height, read from the header.
    pub max_pixels: u64,
    /// Largest single side accepted.
    pub max_side: u32,
    /// Cap on bytes the decoder may allocate.
    pub max_alloc: u64,
    /// Decoded images with a longer side are downscaled to this right away: detection never looks
    /// at more than ~1000 px and recognition crops gain nothing past this.
    pub work_side: u32,
    /// Most pages read from one document (PDF, multi-page TIFF).
    pub max_pages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pixels: 50_000_000,
            max_side: 20_000,
            max_alloc: 512 << 20,
            work_side: 4096,
            max_pages: 50,
        }
    }
}

/// Why an upload is not a usable image or document. Messages are shown to API clients.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty image")]
    Empty,
    #[error(
        "not an image or PDF (supported: PNG, JPEG, BMP, TIFF, WebP, GIF, and PDF of scanned pages)"
    )]
    NotAnImage,
    #[error(
        "unsupported image format {0:?} (supported: PNG, JPEG, BMP, TIFF, WebP, GIF, and PDF of \
         scanned pages)"
    )]
    Unsupported(ImageFormat),
    #[error("image too large: {width}x{height} pixels (limit {limit} pixels, {side} per side)")]
    TooLarge {
        width: u32,
        height: u32,
        limit: u64,
        side: u32,
    },
    #[error("image has no pixels")]
    NoPixels,
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    /// Pages are counted up to `limit + 1`: past that, `at_least` says `pages` is a lower bound
    /// (a page tree may claim 10^9 pages; a TIFF may chain thousands of IFDs).
    #[error(
        "document has {}{pages} pages; at most {limit} are read per upload",
        at_least_word(.at_least)
    )]
    TooManyPages {
        pages: usize,
        limit: usize,
        at_least: bool,
    },
    /// A PDF whose structure cannot be read, or whose page image is stored in a way ocrbox does
    /// not decode (the text says which page and what).
    #[error("unreadable PDF: {0}")]
    Pdf(String),
    #[error("encrypted PDF: remove the password first")]
    Encrypted,
    /// `why` completes "page N of the PDF …", e.g. "has text or drawings, not a scanned image".
    #[error("page {page} of the PDF {why}; ocrbox reads scanned pages only")]
    NotScanned { page: usize, why: String },
}

fn at_least_word(at_least: &bool) -> &'static str {
    if *at_least {
        "at least "
    } else {
        ""
    }
}

/// What an upload is, from its leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One of the accepted image formats (a TIFF may hold several pages).
    Image(ImageFormat),
    Pdf,
}

/// Identifies an accepted format from the leading bytes (never from a file name). A PDF is
/// recognised by `%PDF-` within its first 1024 bytes, where PDF readers look for it.
pub fn sniff(bytes: &[u8]) -> Result<Kind, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.starts_with(b"%PDF-") {
        return Ok(Kind::Pdf);
    }
    match image::guess_format(bytes) {
        Ok(format) if ACCEPTED.contains(&format) => Ok(Kind::Image(format)),
        _ if bytes[..bytes.len().min(1024)]
            .windows(5)
            .any(|w| w == b"%PDF-") =>
        {
            Ok(Kind::Pdf)
        }
        Ok(format) => Err(DecodeError::Unsupported(format)),
        Err(_) => Err(DecodeError::NotAnImage),
    }
}

/// Decodes, applies EXIF orientation, flattens alpha onto white and converts to 8-bit RGB.
/// Images only: a PDF is read page by page through [`super::Document`].
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<RgbImage, DecodeError> {
    decode_sized(bytes, limits).map(|(img, _)| img)
}

/// [`decode`], and the image's size as uploaded (after EXIF orientation, before the downscale
/// to [`Limits::work_side`]).
pub fn decode_sized(bytes: &[u8], limits: &Limits) -> Result<(RgbImage, (u32, u32)), DecodeError> {
    let format = match sniff(bytes)? {
        Kind::Image(format) => format,
        Kind::Pdf => {
            return Err(DecodeError::Pdf(
                "a PDF is a document: it is read page by page, not as one image".into(),
            ))
        }
    };
    let img = read(bytes, format, limits, true)?;
    let size = (img.width(), img.height());
    Ok((shrink(flatten(img), limits.work_side), size))
}

/// A JPEG as a PDF embeds it (`DCTDecode`): decoded within the limits like an uploaded one, but
/// without EXIF orientation, which PDF readers ignore (a page is turned by its `/Rotate`).
pub(super) fn decode_jpeg(bytes: &[u8], limits: &Limits) -> Result<DynamicImage, DecodeError> {
    read(bytes, ImageFormat::Jpeg, limits, false)
}

/// Decodes `bytes` as `format` within the limits, checked from the header before any pixel is
/// decoded; `orient` applies the EXIF orientation.
fn read(
    bytes: &[u8],
    format: ImageFormat,
    limits: &Limits,
    orient: bool,
) -> Result<DynamicImage, DecodeError> {
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder fills a cut-off scan with grey and reports success; reading (and
        // charging for) half a page is worse than saying the upload was incomplete.
        return Err(DecodeError::Corrupt(
            "JPEG data ends before the image does".into(),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    lim.max_alloc = Some(limits.max_alloc);
    reader.limits(lim);
    let mut decoder = match reader.into_decoder() {
        // The decoder refused the header's size against our side limit: report the real size
        // rather than the 0x0 `map_err` can give.
        Err(image::ImageError::Limits(_)) => {
            let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
                .into_dimensions()
                .unwrap_or((0, 0));
            return Err(DecodeError::TooLarge {
                width,
                height,
                limit: limits.max_pixels,
                side: limits.max_side,
            });
        }
        other => other.map_err(map_err)?,
    };
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    // A broken EXIF block must not fail an otherwise good image.
    let orientation = if orient {
        decoder.orientation().ok()
    } else {
        None
    };
    let mut img = DynamicImage::from_decoder(decoder).map_err(map_err)?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// Refuses an empty image, or one over the pixel or side limits, from its stated size.
pub(super) fn check_size(width: u32, height: u32, limits: &Limits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::NoPixels);
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels
        || width > limits.max_side
        || height > limits.max_side
    {
        return Err(DecodeError::TooLarge {
            width,
            height,
            limit: limits.max_pixels,
            side: limits.max_side,
        });
    }
    Ok(())
}

/// Whether an end-of-image marker follows the last start-of-scan marker (an embedded EXIF
/// thumbnail has its own end marker, earlier in the file).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    matches!((last(0xDA), last(0xD9)), (Some(sos), Some(eoi)) if eoi > sos)
}

fn map_err(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Limits(_) => DecodeError::TooLarge {
            width: 0,
            height: 0,
            limit: 0,
            side: 0,
        },
        image::ImageError::Unsupported(u) => match u.format_hint() {
            image::error::ImageFormatHint::Exact(f) => DecodeError::Unsupported(f),
            _ => DecodeError::NotAnImage,
        },
        other => DecodeError::Corrupt(other.to_string()),
    }
}

/// Scales the image down so its long side is at most `side`. fast_image_resize works on the
/// 8-bit pixels with an 8-bit intermediate (about `side × height × 3` bytes), where the image
/// crate's resize holds `width × side` pixels as four f32 each: ~460 MB for a 7000×7000 page.
pub(super) fn shrink(img: RgbImage, side: u32) -> RgbImage {
    use fast_image_resize::{
        images::Image, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer,
    };
    let (w, h) = img.dimensions();
    let long = w.max(h);
    if long <= side {
        return img;
    }
    let scale = f64::from(side) / f64::from(long);
    let dw = ((f64::from(w) * scale).round() as u32).max(1);
    let dh = ((f64::from(h) * scale).round() as u32).max(1);
    let resized = Image::from_vec_u8(w, h, img.into_raw(), PixelType::U8x3).and_then(|src| {
        let mut dst = Image::new(dw, dh, PixelType::U8x3);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|_| fast_image_resize::ImageBufferError::InvalidBufferSize)?;
        Ok(dst.into_vec())
    });
    // The buffer sizes are right by construction; a failure here would be a bug in this function.
    let raw = resized.expect("RGB buffers of the stated sizes");
    RgbImage::from_raw(dw, dh, raw).expect("resizer output has the requested size")
}

/// Transparent pixels become white: text is usually dark on a transparent background, and
/// dropping alpha would leave it dark on black.
pub(super) fn flatten(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            dst[c] = ((u32::from(src[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn rejects_empty_and_garbage() {
        assert!(matches!(sniff(b""), Err(DecodeError::Empty)));
        assert!(matches!(
            sniff(b"hello world, not an image"),
            Err(DecodeError::NotAnImage)
        ));
    }

    #[test]
    fn pdf_is_sniffed_within_its_first_kilobyte() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Ok(Kind::Pdf));
        let mut junk = vec![b' '; 1000];
        junk.extend_from_slice(b"%PDF-1.4");
        assert_eq!(sniff(&junk), Ok(Kind::Pdf));
        junk.splice(0..0, [b' '; 100]);
        assert_eq!(sniff(&junk), Err(DecodeError::NotAnImage));
        assert!(matches!(
            decode(b"%PDF-1.7", &Limits::default()),
            Err(DecodeError::Pdf(_))
        ));
    }

    #[test]
    fn truncated_jpeg_is_refused() {
        let mut jpeg = Vec::new();
        DynamicImage::new_rgb8(64, 64)
            .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
            .unwrap();
        assert!(decode(&jpeg, &Limits::default()).is_ok());
        let cut = &jpeg[..jpeg.len() - 40];
        assert!(matches!(
            decode(cut, &Limits::default()),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn transparent_background_becomes_white() {
        let mut img = image::RgbaImage::new(4, 4);
        img.put_pixel(1, 1, image::Rgba([0, 0, 0, 255]));
        let rgb = decode(&png(DynamicImage::ImageRgba8(img)), &Limits::default()).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 1).0, [0, 0, 0]);
    }

    #[test]
    fn sixteen_bit_gray_decodes() {
        let img = image::ImageBuffer::<image::Luma<u16>, _>::from_pixel(3, 2, image::Luma([65535]));
        let rgb = decode(&png(DynamicImage::ImageLuma16(img)), &Limits::default()).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        assert_eq!(rgb.get_pixel(2, 1).0, [255, 255, 255]);
    }

    #[test]
    fn header_size_checked_before_decoding() {
        let bytes = png(DynamicImage::new_rgb8(300, 200));
        let limits = Limits {
            max_pixels: 10_000,
            ..Limits::default()
        };
        assert!(matches!(
            decode(&bytes, &limits),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn over_side_limit_reports_the_real_size() {
        let bytes = png(DynamicImage::new_luma8(301, 2));
        let limits = Limits {
            max_side: 300,
            ..Limits::default()
        };
        let err = decode(&bytes, &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image too large: 301x2 pixels (limit 50000000 pixels, 300 per side)"
        );
    }

    #[test]
    fn large_images_are_shrunk_early() {
        let bytes = png(DynamicImage::new_rgb8(5000, 100));
        let rgb = decode(&bytes, &Limits::default()).unwrap();
        assert_eq!(rgb.width(), 4096);
    }
}
