//! Uploads of one or more pages: an image, or a multi-page TIFF (what scanners write), decoded a
//! page at a time so a long document never holds all its pages.
//!
//! A TIFF of one page goes through [`decode_sized`] like any image (the `image` crate's full
//! colour handling); a TIFF of several pages is read with the `tiff` crate (pure Rust, CCITT G4
//! included through its `fax` feature), which `image` itself uses for the first page.

use std::io::Cursor;

use image::{ImageFormat, RgbImage};
use tiff::decoder::{Decoder, DecodingResult};
use tiff::ColorType;

use super::decode::{decode_sized, shrink, sniff, DecodeError, Limits};

/// A decoded page and the size it had as uploaded (after EXIF orientation, before ocrbox's
/// downscale to [`Limits::work_side`]), so line boxes can be given in uploaded pixels.
pub struct Decoded {
    pub image: RgbImage,
    pub width: u32,
    pub height: u32,
}

/// An upload whose pages are decoded on demand.
pub struct Document<'a> {
    bytes: &'a [u8],
    limits: Limits,
    pages: usize,
}

/// IFDs walked at most when counting a TIFF's pages: each costs a few header reads, so a file
/// claiming more is refused quickly with this as its count.
const MAX_IFDS: usize = 10_000;

impl<'a> Document<'a> {
    /// Checks the container and counts pages without decoding pixels;
    /// [`DecodeError::TooManyPages`] beyond `limits.max_pages`.
    pub fn open(bytes: &'a [u8], limits: &Limits) -> Result<Document<'a>, DecodeError> {
        let pages = match sniff(bytes)? {
            ImageFormat::Tiff => tiff_pages(bytes)?,
            _ => 1,
        };
        if pages > limits.max_pages {
            return Err(DecodeError::TooManyPages {
                pages,
                limit: limits.max_pages,
            });
        }
        Ok(Document {
            bytes,
            limits: *limits,
            pages,
        })
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Decodes page `i` (0-based), within the limits.
    pub fn page(&self, i: usize) -> Result<Decoded, DecodeError> {
        let (image, (width, height)) = if self.pages == 1 {
            decode_sized(self.bytes, &self.limits)?
        } else {
            tiff_page(self.bytes, i, &self.limits)?
        };
        Ok(Decoded {
            image,
            width,
            height,
        })
    }
}

fn tiff_err(e: tiff::TiffError) -> DecodeError {
    DecodeError::Corrupt(format!("TIFF: {e}"))
}

fn tiff_decoder(bytes: &[u8]) -> Result<Decoder<Cursor<&[u8]>>, DecodeError> {
    Decoder::new(Cursor::new(bytes)).map_err(tiff_err)
}

/// Pages (IFDs) of a TIFF, counted up to [`MAX_IFDS`].
fn tiff_pages(bytes: &[u8]) -> Result<usize, DecodeError> {
    let mut dec = tiff_decoder(bytes)?;
    let mut pages = 1;
    while pages < MAX_IFDS && dec.more_images() {
        dec.next_image().map_err(tiff_err)?;
        pages += 1;
    }
    Ok(pages)
}

/// Page `i` of a multi-page TIFF as 8-bit RGB (shrunk to the working size), and its size.
fn tiff_page(
    bytes: &[u8],
    i: usize,
    limits: &Limits,
) -> Result<(RgbImage, (u32, u32)), DecodeError> {
    let mut dec = tiff_decoder(bytes)?;
    let mut lim = tiff::decoder::Limits::default();
    lim.decoding_buffer_size = usize::try_from(limits.max_alloc).unwrap_or(usize::MAX);
    dec = dec.with_limits(lim);
    dec.seek_to_image(i).map_err(tiff_err)?;
    let (w, h) = dec.dimensions().map_err(tiff_err)?;
    if w == 0 || h == 0 {
        return Err(DecodeError::NoPixels);
    }
    if u64::from(w) * u64::from(h) > limits.max_pixels || w.max(h) > limits.max_side {
        return Err(DecodeError::TooLarge {
            width: w,
            height: h,
            limit: limits.max_pixels,
            side: limits.max_side,
        });
    }
    let colour = dec.colortype().map_err(tiff_err)?;
    let data = dec.read_image().map_err(tiff_err)?;
    let rgb = to_rgb(colour, data, w, h)?;
    Ok((shrink(rgb, limits.work_side), (w, h)))
}

/// Converts the layouts scanners write: bilevel (rows padded to whole bytes), grey, RGB(A).
fn to_rgb(
    colour: ColorType,
    data: DecodingResult,
    w: u32,
    h: u32,
) -> Result<RgbImage, DecodeError> {
    let (wu, hu) = (w as usize, h as usize);
    let grey = |v: &[u8]| -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let g = v[y as usize * wu + x as usize];
            image::Rgb([g, g, g])
        })
    };
    let short = || DecodeError::Corrupt("TIFF: fewer pixels than its size".into());
    match (colour, data) {
        (ColorType::Gray(1), DecodingResult::U8(v)) => {
            let row = wu.div_ceil(8);
            if v.len() < row * hu {
                return Err(short());
            }
            // The decoder has already applied the photometric interpretation: 1 is white.
            Ok(RgbImage::from_fn(w, h, |x, y| {
                let byte = v[y as usize * row + x as usize / 8];
                let g = if byte & (0x80 >> (x % 8)) != 0 {
                    255
                } else {
                    0
                };
                image::Rgb([g, g, g])
            }))
        }
        (ColorType::Gray(8), DecodingResult::U8(v)) if v.len() >= wu * hu => Ok(grey(&v)),
        (ColorType::Gray(16), DecodingResult::U16(v)) if v.len() >= wu * hu => {
            let v: Vec<u8> = v.iter().map(|&s| (s >> 8) as u8).collect();
            Ok(grey(&v))
        }
        (ColorType::RGB(8), DecodingResult::U8(v)) => {
            RgbImage::from_raw(w, h, v.get(..wu * hu * 3).ok_or_else(short)?.to_vec())
                .ok_or_else(short)
        }
        (ColorType::RGBA(8), DecodingResult::U8(v)) if v.len() >= wu * hu * 4 => {
            // Transparent becomes white, as for images (`decode`).
            Ok(RgbImage::from_fn(w, h, |x, y| {
                let p = &v[(y as usize * wu + x as usize) * 4..][..4];
                let a = u32::from(p[3]);
                let mix = |c: u8| ((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8;
                image::Rgb([mix(p[0]), mix(p[1]), mix(p[2])])
            }))
        }
        (colour, _) => Err(DecodeError::Corrupt(format!(
            "TIFF page layout {colour:?} is not supported (bilevel, grey, RGB or RGBA)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_g4_tiff_has_three_dark_on_white_pages() {
        let bytes = fixture("three-pages-g4.tif");
        let doc = Document::open(&bytes, &Limits::default()).unwrap();
        assert_eq!(doc.pages(), 3);
        for i in 0..3 {
            let page = doc.page(i).unwrap();
            assert_eq!(page.image.dimensions(), (page.width, page.height));
            let px = page.image.as_raw();
            let mean = px.iter().map(|&v| u64::from(v)).sum::<u64>() / px.len() as u64;
            let dark = px.iter().filter(|&&v| v < 128).count();
            assert!(
                mean > 200 && dark > 1000,
                "page {i}: mean {mean}, dark {dark}"
            );
        }
        assert!(doc.page(3).is_err());
    }

    #[test]
    fn too_many_pages_are_refused_before_decoding() {
        let bytes = fixture("three-pages-g4.tif");
        let limits = Limits {
            max_pages: 2,
            ..Limits::default()
        };
        assert_eq!(
            Document::open(&bytes, &limits).err(),
            Some(DecodeError::TooManyPages { pages: 3, limit: 2 })
        );
    }

    #[test]
    fn an_image_is_one_page_decoded_as_before() {
        let bytes = fixture("line_001.png");
        let doc = Document::open(&bytes, &Limits::default()).unwrap();
        assert_eq!(doc.pages(), 1);
        let page = doc.page(0).unwrap();
        assert_eq!(
            page.image,
            super::super::decode::decode(&bytes, &Limits::default()).unwrap()
        );
    }
}
