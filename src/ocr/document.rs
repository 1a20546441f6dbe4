//! Uploads of one or more pages: an image, a PDF of scanned pages ([`pdf`]) or a multi-page
//! TIFF (what scanners write), decoded a page at a time so a long document never holds all its
//! pages.
//!
//! [`Document::open`] checks the container and counts the pages without decoding a pixel (for
//! an image it reads nothing past the format's magic bytes; a PDF's pages are all checked to be
//! one scanned image each), so an unreadable document is refused before it is queued or
//! charged.
//!
//! A TIFF of one page goes through [`decode_sized`] like any image (the `image` crate's full
//! colour handling); a TIFF of several pages is read with the `tiff` crate (pure Rust, CCITT G4
//! included through its `fax` feature), which `image` itself uses for the first page.

mod ccitt;
mod pdf;

use std::io::Cursor;

use image::{ImageFormat, RgbImage};
use tiff::decoder::{Decoder, DecodingResult};
use tiff::ColorType;

use super::decode::{check_size, decode_sized, shrink, sniff, DecodeError, Kind, Limits};
use pdf::Pdf;

/// A decoded page and the size it had as uploaded (after EXIF orientation or the PDF page's
/// turn, before ocrbox's downscale to [`Limits::work_side`]), so line boxes can be given in
/// uploaded pixels. A PDF page's size is its image's, in that image's pixels.
pub struct Decoded {
    pub image: RgbImage,
    pub width: u32,
    pub height: u32,
}

/// An upload whose pages are decoded on demand. It borrows the upload; a PDF's parsed objects
/// (its compressed streams, about the file's size) are kept to find the pages again.
pub struct Document<'a> {
    bytes: &'a [u8],
    limits: Limits,
    source: Source,
}

enum Source {
    Image,
    Tiff { pages: usize },
    Pdf(Box<Pdf>),
}

impl<'a> Document<'a> {
    /// Checks the container and counts pages without decoding pixels;
    /// [`DecodeError::TooManyPages`] beyond `limits.max_pages`.
    pub fn open(bytes: &'a [u8], limits: &Limits) -> Result<Document<'a>, DecodeError> {
        let source = match sniff(bytes)? {
            Kind::Pdf => Source::Pdf(Box::new(Pdf::open(bytes, limits)?)),
            Kind::Image(ImageFormat::Tiff) => match tiff_pages(bytes, limits.max_pages)? {
                1 => Source::Image,
                pages => Source::Tiff { pages },
            },
            Kind::Image(_) => Source::Image,
        };
        Ok(Document {
            bytes,
            limits: *limits,
            source,
        })
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        match &self.source {
            Source::Image => 1,
            Source::Tiff { pages } => *pages,
            Source::Pdf(pdf) => pdf.pages(),
        }
    }

    /// Decodes page `i` (0-based), within the limits.
    pub fn page(&self, i: usize) -> Result<Decoded, DecodeError> {
        let (image, (width, height)) = match &self.source {
            Source::Image if i == 0 => decode_sized(self.bytes, &self.limits)?,
            Source::Image => return Err(DecodeError::Corrupt(format!("no page {}", i + 1))),
            Source::Tiff { .. } => tiff_page(self.bytes, i, &self.limits)?,
            Source::Pdf(pdf) => pdf.page(i, &self.limits)?,
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

/// Pages (IFDs) of a TIFF. Counting stops one past `max_pages`: a file chaining thousands of
/// IFDs (or looping back to one) costs `max_pages` header reads.
fn tiff_pages(bytes: &[u8], max_pages: usize) -> Result<usize, DecodeError> {
    let mut dec = tiff_decoder(bytes)?;
    let mut pages = 1;
    while dec.more_images() {
        if pages > max_pages {
            return Err(DecodeError::TooManyPages {
                pages,
                limit: max_pages,
                at_least: true,
            });
        }
        dec.next_image().map_err(tiff_err)?;
        pages += 1;
    }
    if pages > max_pages {
        return Err(DecodeError::TooManyPages {
            pages,
            limit: max_pages,
            at_least: false,
        });
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
    check_size(w, h, limits)?;
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

    /// Mean brightness and count of dark pixels.
    fn ink(img: &RgbImage) -> (u64, usize) {
        let px = img.as_raw();
        let mean = px.iter().map(|&v| u64::from(v)).sum::<u64>() / px.len() as u64;
        (mean, px.iter().filter(|&&v| v < 128).count() / 3)
    }

    /// Mean absolute difference (0-255) between a page and a fixture image of the same size,
    /// in grey.
    fn diff(got: &RgbImage, want: &str) -> f64 {
        let want = image::load_from_memory(&fixture(want)).unwrap().to_luma8();
        let want = image::imageops::resize(
            &want,
            got.width(),
            got.height(),
            image::imageops::FilterType::Triangle,
        );
        let got = image::DynamicImage::ImageRgb8(got.clone()).to_luma8();
        let sum: u64 = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(&a, &b)| u64::from(a.abs_diff(b)))
            .sum();
        sum as f64 / got.as_raw().len() as f64
    }

    fn open(bytes: &[u8]) -> Result<Document<'_>, DecodeError> {
        Document::open(bytes, &Limits::default())
    }

    #[test]
    fn a_jpeg_pdf_has_two_pages_as_scanned() {
        let bytes = fixture("two-pages.pdf");
        let doc = open(&bytes).unwrap();
        assert_eq!(doc.pages(), 2);
        for (i, name) in ["page_0.png", "page_1.png"].into_iter().enumerate() {
            let page = doc.page(i).unwrap();
            assert_eq!((page.width, page.height), (1240, 752));
            assert_eq!(page.image.dimensions(), (1240, 752));
            let d = diff(&page.image, name);
            assert!(d < 6.0, "page {i}: mean difference {d} from {name}");
        }
        assert!(doc.page(2).is_err());
    }

    #[test]
    fn a_g4_pdf_page_is_black_text_on_white() {
        let bytes = fixture("g4.pdf");
        let doc = open(&bytes).unwrap();
        assert_eq!(doc.pages(), 1);
        let page = doc.page(0).unwrap();
        assert_eq!((page.width, page.height), (1240, 752));
        let (mean, dark) = ink(&page.image);
        assert!(mean > 200 && dark > 1000, "mean {mean}, dark {dark}");
        let d = diff(&page.image, "page_0.png");
        assert!(d < 12.0, "mean difference {d} from page_0.png");
    }

    /// G4 with /BlackIs1 true, Flate grey with PNG predictors on a /Rotate 90 page, and Flate
    /// 1-bit, in object streams (qpdf).
    #[test]
    fn other_writers_pages_come_out_upright_and_dark_on_white() {
        let bytes = fixture("mixed.pdf");
        let doc = open(&bytes).unwrap();
        assert_eq!(doc.pages(), 3);
        let sizes = [(1240, 752), (376, 620), (1240, 752)];
        for (i, size) in sizes.into_iter().enumerate() {
            let page = doc.page(i).unwrap();
            assert_eq!((page.width, page.height), size, "page {i}");
            assert_eq!(page.image.dimensions(), size, "page {i}");
            let (mean, dark) = ink(&page.image);
            assert!(
                mean > 200 && dark > 500,
                "page {i}: mean {mean}, dark {dark}"
            );
        }
        assert!(diff(&doc.page(0).unwrap().image, "page_1.png") < 12.0);
        assert!(diff(&doc.page(2).unwrap().image, "page_0.png") < 12.0);
        // Turned back by hand, the /Rotate 90 page is page_1.png.
        let turned = image::imageops::rotate270(&doc.page(1).unwrap().image);
        assert!(diff(&turned, "page_1.png") < 8.0);
    }

    #[test]
    fn a_min_is_white_g4_tiff_is_dark_on_white() {
        let bytes = fixture("two-pages-g4-miniswhite.tif");
        let doc = open(&bytes).unwrap();
        assert_eq!(doc.pages(), 2);
        for (i, name) in ["page_0.png", "page_1.png"].into_iter().enumerate() {
            let page = doc.page(i).unwrap();
            let d = diff(&page.image, name);
            assert!(d < 12.0, "page {i}: mean difference {d} from {name}");
        }
    }

    #[test]
    fn born_digital_and_encrypted_pdfs_are_refused_with_the_reason() {
        let err = open(&fixture("born-digital.pdf")).err().unwrap();
        assert!(
            matches!(err, DecodeError::NotScanned { page: 1, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "page 1 of the PDF has text or drawings, not a scanned image; ocrbox reads scanned \
             pages only"
        );
        assert_eq!(
            open(&fixture("encrypted.pdf")).err(),
            Some(DecodeError::Encrypted)
        );
        // An owner password alone restricts nothing a reader enforces: read as usual.
        let bytes = fixture("owner-password.pdf");
        let doc = open(&bytes).unwrap();
        let (mean, dark) = ink(&doc.page(0).unwrap().image);
        assert!(mean > 200 && dark > 1000);
    }

    /// A PDF of `objects` (numbered from 1; the first is the catalog) with a correct xref.
    fn pdf(objects: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend(format!("{} 0 obj\n", i + 1).bytes());
            out.extend(body);
            out.extend(b"\nendobj\n");
        }
        let xref = out.len();
        out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
        for o in offsets {
            out.extend(format!("{o:010} 00000 n \n").bytes());
        }
        out.extend(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .bytes(),
        );
        out
    }

    fn stream(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut s = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        s.extend(data);
        s.extend(b"\nendstream");
        s
    }

    /// One page drawing image object 4 with `content`.
    fn one_image_page(image: Vec<u8>, content: &[u8]) -> Vec<u8> {
        pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
              /Resources << /XObject << /Im0 4 0 R >> >> /Contents 5 0 R >>"
                .to_vec(),
            image,
            stream("", content),
        ])
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    /// Each hostile document fails with a clear error, quickly.
    #[test]
    fn hostile_documents_fail_cleanly_and_quickly() {
        let upright = b"q 612 0 0 792 0 0 cm /Im0 Do Q".as_slice();
        let grey = |w: u32, h: u32, data: &[u8]| {
            stream(
                &format!(
                    "/Type /XObject /Subtype /Image /Width {w} /Height {h} \
                     /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode"
                ),
                data,
            )
        };
        // A page tree claiming 10^9 pages, whose kids are the tree itself, over and over.
        let claim = pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count 1000000000 >>",
                "2 0 R ".repeat(1000)
            )
            .into_bytes(),
        ]);
        // 10^6 real leaves, all the same page object.
        let many = pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            format!(
                "<< /Type /Pages /Kids [{}] /Count 1000000 >>",
                "3 0 R ".repeat(100_000)
            )
            .into_bytes(),
            b"<< /Type /Page /Parent 2 0 R >>".to_vec(),
        ]);
        let mut deep = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /X ".to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        let huge = one_image_page(grey(100_000, 100_000, b"x"), upright);
        // 2 MB of zeros for a 100x100 image, inflating 2000:1: refused past what it needs.
        let bomb = one_image_page(grey(100, 100, &zlib(&vec![0; 2 << 20])), upright);
        let short = one_image_page(grey(100, 100, &zlib(&[0; 5000])), upright);
        let mut broken_xref = fixture("g4.pdf");
        let at = broken_xref.len() - 40;
        broken_xref[at..].fill(b'9');
        // Neither the cross-reference data nor a scan for "N 0 obj" finds an object.
        let mut no_objects = fixture("g4.pdf");
        for i in 0..no_objects.len() {
            if no_objects[i..].starts_with(b"obj") || no_objects[i..].starts_with(b"xref") {
                no_objects[i] = b'#';
            }
        }
        let two = fixture("two-pages.pdf");
        let text = one_image_page(grey(1, 1, &zlib(&[0])), b"BT /F1 12 Tf (hi) Tj ET /Im0 Do");
        let drawing = one_image_page(grey(1, 1, &zlib(&[0])), b"0 0 m 100 100 l S /Im0 Do");
        let hidden_text = one_image_page(grey(2, 2, &zlib(&[0; 4])), b"BT 3 Tr (hi) Tj ET /Im0 Do");
        let two_images = one_image_page(grey(1, 1, &zlib(&[0])), b"/Im0 Do /Im0 Do");
        let jbig2 = one_image_page(
            stream(
                "/Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray \
                 /BitsPerComponent 1 /Filter /JBIG2Decode",
                b"x",
            ),
            upright,
        );

        // Content inflating to 4 MiB, listed 10 000 times as the page's content.
        let content_bomb = {
            let mut objects = vec![
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
                format!(
                    "<< /Type /Page /Parent 2 0 R /Contents [{}] >>",
                    "4 0 R ".repeat(10_000)
                )
                .into_bytes(),
            ];
            objects.push(stream("/Filter /FlateDecode", &zlib(&vec![b' '; 4 << 20])));
            pdf(&objects)
        };
        // 500 object streams inflating to 4 MiB each (2 GB): lopdf's limit is per stream.
        let object_stream_bomb = {
            let mut objects = vec![
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
                b"<< /Type /Page /Parent 2 0 R >>".to_vec(),
            ];
            let zeros = zlib(&vec![b' '; 4 << 20]);
            for _ in 0..500 {
                objects.push(stream(
                    "/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode",
                    &zeros,
                ));
            }
            pdf(&objects)
        };

        let limits = Limits::default();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("10^9 pages, a cycle", claim, "loops back"),
            ("10^5 kids, one page", many, "loops back"),
            ("10^5 nested arrays", deep, "nested deeper than 256"),
            (
                "100000x100000 image",
                huge,
                "image too large: 100000x100000",
            ),
            ("Flate bomb", bomb, "inflates past the 10000 bytes"),
            ("short Flate data", short, "ends early"),
            ("broken xref", broken_xref, ""),
            ("no objects", no_objects, "unreadable PDF"),
            ("content bomb", content_bomb, "content is too long"),
            ("object stream bomb", object_stream_bomb, "too large"),
            (
                "cut in half",
                two[..two.len() / 2].to_vec(),
                "unreadable PDF",
            ),
            ("cut at 5000", two[..5000].to_vec(), "unreadable PDF"),
            ("header only", b"%PDF-1.7\n".to_vec(), "unreadable PDF"),
            ("text", text, "has text or drawings"),
            ("drawing", drawing, "has text or drawings"),
            ("two images", two_images, "more than one image"),
            ("JBIG2", jbig2, "JBIG2"),
        ];
        for (what, bytes, why) in cases {
            let t = std::time::Instant::now();
            let got = Document::open(&bytes, &limits).and_then(|doc| {
                (0..doc.pages()).try_for_each(|i| doc.page(i).map(drop))?;
                Ok(doc.pages())
            });
            let took = t.elapsed();
            eprintln!("{what}: {got:?} in {took:.2?}");
            assert!(took.as_secs_f64() < 2.0, "{what}: {took:?}");
            match got {
                // A broken xref is rebuilt by scanning the objects: the page may still read.
                Ok(pages) if what == "broken xref" => assert_eq!(pages, 1),
                Ok(pages) => panic!("{what}: read {pages} pages"),
                Err(e) => assert!(e.to_string().contains(why), "{what}: {e}"),
            }
        }
        // An invisible OCR layer over the scan (text render mode 3) is no reason to refuse.
        assert_eq!(open(&hidden_text).unwrap().pages(), 1);
    }

    /// The less common ways a page stores its image, each on a 3×2 image whose top-left pixel
    /// differs from the rest: decoded, and turned as the page shows it.
    #[test]
    fn image_variants_decode_as_readers_show_them() {
        let upright = b"q 612 0 0 792 0 0 cm /Im0 Do Q".as_slice();
        let image = |dict: &str, data: &[u8]| {
            stream(
                &format!("/Type /XObject /Subtype /Image /Width 3 /Height 2 {dict}"),
                data,
            )
        };
        let page = |image: Vec<u8>, content: &[u8]| {
            let bytes = one_image_page(image, content);
            let doc = open(&bytes).unwrap();
            let page = doc.page(0).unwrap();
            assert_eq!(page.image.dimensions(), (page.width, page.height));
            page.image
        };
        let top_left = |img: &RgbImage| (img.get_pixel(0, 0).0, img.get_pixel(1, 1).0);

        // 1-bit mask, rows padded to a byte: 0 paints black, 1 leaves white; /Decode swaps.
        let mask = [0b0110_0000, 0b1110_0000];
        let img = page(image("/ImageMask true", &mask), upright);
        assert_eq!(top_left(&img), ([0; 3], [255; 3]));
        let img = page(image("/ImageMask true /Decode [1 0]", &mask), upright);
        assert_eq!(top_left(&img), ([255; 3], [0; 3]));
        // 8-bit grey inverted by /Decode, behind a filter chain (ASCIIHex then Flate).
        let hex: String = zlib(&[10, 200, 200, 200, 200, 200])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let img = page(
            image(
                "/ColorSpace /DeviceGray /BitsPerComponent 8 /Decode [1 0] \
                 /Filter [/ASCIIHexDecode /FlateDecode]",
                format!("{hex}>").as_bytes(),
            ),
            upright,
        );
        assert_eq!(top_left(&img), ([245; 3], [55; 3]));
        // 2-bit indexed: palette of red, green, blue, white.
        let img = page(
            image(
                "/ColorSpace [/Indexed /DeviceRGB 3 <ff000000ff000000ffffffff>] \
                 /BitsPerComponent 2",
                &[0b0011_1100, 0b1111_1100],
            ),
            upright,
        );
        assert_eq!(top_left(&img), ([255, 0, 0], [255; 3]));
        // 16-bit RGB and 8-bit CMYK.
        let mut rgb16 = vec![0u8; 3 * 2 * 6];
        rgb16[..2].copy_from_slice(&[0xff, 0x00]);
        let img = page(
            image("/ColorSpace /DeviceRGB /BitsPerComponent 16", &rgb16),
            upright,
        );
        assert_eq!(top_left(&img), ([255, 0, 0], [0; 3]));
        let mut cmyk = vec![0u8; 4 * 6];
        cmyk[3] = 255;
        let img = page(
            image("/ColorSpace /DeviceCMYK /BitsPerComponent 8", &cmyk),
            upright,
        );
        assert_eq!(top_left(&img), ([0; 3], [255; 3]));

        // Drawn through a form XObject whose content turns it 90° clockwise: 2×3, the marked
        // pixel at the top right.
        let grey = image(
            "/ColorSpace /DeviceGray /BitsPerComponent 8",
            &[0, 255, 255, 255, 255, 255],
        );
        let bytes = pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
              /Resources << /XObject << /Fm0 6 0 R >> >> /Contents 5 0 R >>"
                .to_vec(),
            grey,
            stream("", b"q /Fm0 Do Q"),
            stream(
                "/Type /XObject /Subtype /Form /BBox [0 0 612 792] \
                 /Resources << /XObject << /Im0 4 0 R >> >>",
                b"q 0 -612 792 0 0 612 cm /Im0 Do Q",
            ),
        ]);
        let doc = open(&bytes).unwrap();
        let turned = doc.page(0).unwrap();
        assert_eq!((turned.width, turned.height), (2, 3));
        assert_eq!(turned.image.get_pixel(1, 0).0, [0; 3]);
        assert_eq!(turned.image.get_pixel(0, 0).0, [255; 3]);
    }

    /// 100 000 nested arrays inside an object stream (uncompressed, so the pre-scan skips it as
    /// stream data): lopdf's own depth limit must hold, on a test thread's 2 MiB stack.
    #[test]
    fn nesting_hidden_in_an_object_stream_does_not_overflow_the_stack() {
        let mut out = b"%PDF-1.7\n".to_vec();
        let mut offsets = vec![0usize; 6];
        let obj = |out: &mut Vec<u8>, offsets: &mut Vec<usize>, n: usize, body: &[u8]| {
            offsets[n] = out.len();
            out.extend(format!("{n} 0 obj\n").bytes());
            out.extend(body);
            out.extend(b"\nendobj\n");
        };
        obj(
            &mut out,
            &mut offsets,
            1,
            b"<< /Type /Catalog /Pages 2 0 R /X 6 0 R >>",
        );
        obj(
            &mut out,
            &mut offsets,
            2,
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        );
        obj(
            &mut out,
            &mut offsets,
            3,
            b"<< /Type /Page /Parent 2 0 R >>",
        );
        let mut inner = b"6 0 ".to_vec();
        let first = inner.len();
        inner.extend(std::iter::repeat_n(b'[', 100_000));
        inner.extend(std::iter::repeat_n(b']', 100_000));
        obj(
            &mut out,
            &mut offsets,
            4,
            &stream(&format!("/Type /ObjStm /N 1 /First {first}"), &inner),
        );
        let xref_at = out.len();
        let mut entries = vec![0u8, 0, 0, 0, 0, 0xff, 0xff];
        for &o in &offsets[1..5] {
            entries.push(1);
            entries.extend((o as u32).to_be_bytes());
            entries.extend([0, 0]);
        }
        entries.extend([1]);
        entries.extend((xref_at as u32).to_be_bytes());
        entries.extend([0, 0]);
        entries.extend([2, 0, 0, 0, 4, 0, 0]);
        obj(
            &mut out,
            &mut offsets,
            5,
            &stream("/Type /XRef /Size 7 /W [1 4 2] /Root 1 0 R", &entries),
        );
        out.extend(format!("startxref\n{xref_at}\n%%EOF\n").bytes());
        let got = open(&out).map(|d| d.pages());
        // The page has no content, so at best it is refused as not scanned.
        assert!(got.is_err(), "{got:?}");
    }

    /// A little-endian TIFF of `n` 1×1 grey pages, each IFD chained to the next.
    fn tiff_of(n: usize) -> Vec<u8> {
        let mut out = b"II*\0\x08\0\0\0".to_vec();
        for i in 0..n {
            let ifd = out.len();
            let data = ifd + 2 + 8 * 12 + 4;
            let entries: [(u16, u16, u32); 8] = [
                (256, 3, 1),           // width
                (257, 3, 1),           // height
                (258, 3, 8),           // bits per sample
                (259, 3, 1),           // no compression
                (262, 3, 1),           // black is zero
                (273, 4, data as u32), // strip offset
                (278, 3, 1),           // rows per strip
                (279, 4, 1),           // strip byte count
            ];
            out.extend(8u16.to_le_bytes());
            for (tag, kind, value) in entries {
                out.extend(tag.to_le_bytes());
                out.extend(kind.to_le_bytes());
                out.extend(1u32.to_le_bytes());
                out.extend(value.to_le_bytes());
            }
            let next = if i + 1 < n { data + 1 } else { 0 };
            out.extend((next as u32).to_le_bytes());
            out.push(200);
        }
        out
    }

    #[test]
    fn a_tiff_of_thousands_of_pages_is_counted_only_past_the_limit() {
        let bytes = tiff_of(10_000);
        let t = std::time::Instant::now();
        let err = open(&bytes).err().unwrap();
        assert!(t.elapsed().as_millis() < 500, "{:?}", t.elapsed());
        assert_eq!(
            err.to_string(),
            "document has at least 51 pages; at most 50 are read per upload"
        );
        let three = tiff_of(3);
        let doc = open(&three).unwrap();
        assert_eq!(doc.pages(), 3);
        assert_eq!(doc.page(2).unwrap().image.get_pixel(0, 0).0, [200; 3]);
    }

    /// A poor man's fuzzer for machines without nightly (fuzz/ needs it): bit flips, byte
    /// runs and cuts of the fixture documents through `open` and every `page`; none may panic
    /// or take long (`OCRBOX_MUTATIONS=N cargo test --release --lib mutated_documents --
    /// --ignored`).
    #[test]
    #[ignore]
    fn mutated_documents_fail_cleanly() {
        let rounds: usize = std::env::var("OCRBOX_MUTATIONS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(2000);
        let seeds: Vec<Vec<u8>> = [
            "g4.pdf",
            "mixed.pdf",
            "owner-password.pdf",
            "born-digital.pdf",
            "two-pages-g4-miniswhite.tif",
        ]
        .iter()
        .map(|n| fixture(n))
        .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let limits = Limits::default();
        let mut slowest = std::time::Duration::ZERO;
        for round in 0..rounds {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                match next() % 4 {
                    0 => bytes[at] ^= 1 << (next() % 8),
                    1 => bytes[at] = b"0123456789[]<>()/ RQ"[(next() % 20) as usize],
                    2 => bytes.truncate(at.max(16)),
                    _ => {
                        let run = (next() % 64) as usize;
                        let end = (at + run).min(bytes.len());
                        bytes[at..end].fill(next() as u8);
                    }
                }
            }
            let t = std::time::Instant::now();
            let _ = Document::open(&bytes, &limits)
                .and_then(|doc| (0..doc.pages()).try_for_each(|i| doc.page(i).map(drop)));
            slowest = slowest.max(t.elapsed());
            assert!(
                t.elapsed().as_secs() < 5,
                "round {round}: {:?}",
                t.elapsed()
            );
        }
        eprintln!("{rounds} mutated documents, slowest {slowest:.2?}");
    }

    /// Writes every page of the fixture documents (and of `$OCRBOX_DUMP_FILES`) to
    /// `$OCRBOX_DUMP/` as PNG, with timings
    /// (`cargo test --release --lib dump_fixture_pages -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn dump_fixture_pages() {
        let dir = std::env::var("OCRBOX_DUMP").unwrap_or_else(|_| "/tmp".into());
        let mut files: Vec<String> = [
            "two-pages.pdf",
            "g4.pdf",
            "mixed.pdf",
            "three-pages-g4.tif",
            "two-pages-g4-miniswhite.tif",
        ]
        .iter()
        .map(|n| format!("{}/tests/fixtures/{n}", env!("CARGO_MANIFEST_DIR")))
        .collect();
        // More files to read, by path, separated by commas.
        if let Ok(more) = std::env::var("OCRBOX_DUMP_FILES") {
            files.extend(more.split(',').map(String::from));
        }
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let name = path.rsplit('/').next().unwrap();
            let t = std::time::Instant::now();
            let doc = open(&bytes).unwrap();
            let opened = t.elapsed();
            for i in 0..doc.pages() {
                let t = std::time::Instant::now();
                let page = doc.page(i).unwrap();
                let took = t.elapsed();
                eprintln!(
                    "{name} page {i}: open {opened:.2?}, decode {took:.2?}, {}x{}",
                    page.width, page.height
                );
                page.image.save(format!("{dir}/{name}-{i}.png")).unwrap();
            }
        }
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
            Some(DecodeError::TooManyPages {
                pages: 3,
                limit: 2,
                at_least: false
            })
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
