//! CCITT Group 4 (T.6) decoding of a PDF's `CCITTFaxDecode` image, as scanners write 1-bit
//! pages. The code tables are the `fax` crate's (the ones the `tiff` crate decodes G4 TIFF
//! with); the line loop is here because PDF's `/EncodedByteAlign` starts every row on a byte
//! boundary, which `fax`'s own decoder cannot do, and so the end of the data can be told from a
//! real end-of-block marker.

use fax::maps::{black, mode, white, Mode};

/// Bits of the encoded data, most significant first. Reads past the end give zero bits, so a
/// short final code still decodes; `overrun` tells a real end-of-block marker from zeros made up
/// after the data.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn overrun(&self) -> bool {
        self.pos > self.data.len() * 8
    }

    fn align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }
}

impl fax::BitReader for Bits<'_> {
    type Error = ();

    fn peek(&self, bits: u8) -> Option<u16> {
        if bits > 16 {
            return None;
        }
        let mut v = 0u32;
        for i in 0..usize::from(bits) {
            let p = self.pos + i;
            let bit = self.data.get(p / 8).map_or(0, |b| (b >> (7 - p % 8)) & 1);
            v = v << 1 | u32::from(bit);
        }
        Some(v as u16)
    }

    fn consume(&mut self, bits: u8) -> Result<(), ()> {
        self.pos += usize::from(bits);
        // Far past the end is only ever zeros: stop rather than decode them.
        if self.pos > self.data.len() * 8 + 64 {
            Err(())
        } else {
            Ok(())
        }
    }

    fn bits_to_byte_boundary(&self) -> u8 {
        ((8 - self.pos % 8) % 8) as u8
    }
}

/// How a row's two colours are written: `black` and `white` are the grey levels of CCITT's
/// black and white pels (after `/BlackIs1`, `/Decode` and `/ImageMask` are applied).
pub(super) struct Params {
    pub width: u32,
    pub height: u32,
    /// Rows the data codes (`/Rows`, at most `height`); those below are white.
    pub rows: u32,
    pub byte_align: bool,
    pub black: u8,
    pub white: u8,
}

/// Decodes `data` into 8-bit grey rows, `row(y, pixels)` once per row, top to bottom. Rows
/// after an end-of-block marker are white (encoders may omit trailing white rows). Data that
/// ends, or stops decoding, before the last row is an error: a cut-off scan is not read as
/// half a page.
pub(super) fn decode_g4(
    data: &[u8],
    p: &Params,
    mut row: impl FnMut(u32, &[u8]),
) -> Result<(), String> {
    let mut bits = Bits { data, pos: 0 };
    let mut reference: Vec<u32> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut pixels = vec![p.white; p.width as usize];
    let mut ended = false;
    for y in 0..p.height {
        if y == p.rows {
            ended = true;
        }
        if !ended {
            if p.byte_align {
                bits.align();
            }
            match line(&mut bits, &reference, &mut current, p.width) {
                Ok(true) => {
                    std::mem::swap(&mut reference, &mut current);
                    current.clear();
                }
                Ok(false) if y > 0 && !bits.overrun() => ended = true,
                _ if bits.overrun() => {
                    return Err(format!(
                        "CCITT data ends at row {y} of {}, before the image does",
                        p.rows
                    ))
                }
                _ => return Err(format!("CCITT G4 data is corrupt at row {y}")),
            }
        }
        if ended {
            pixels.fill(p.white);
        } else {
            paint(&mut pixels, &reference, p);
        }
        row(y, &pixels);
    }
    Ok(())
}

/// Fills a row from its colour changes (the first is white to black).
fn paint(pixels: &mut [u8], changes: &[u32], p: &Params) {
    pixels.fill(p.white);
    let width = pixels.len();
    for pair in changes.chunks(2) {
        let from = (pair[0] as usize).min(width);
        let to = pair.get(1).map_or(width, |&e| (e as usize).min(width));
        if from < to {
            pixels[from..to].fill(p.black);
        }
    }
}

/// Decodes one coded line against `reference` into `current` (positions where the colour
/// changes, the first to black). `Ok(false)` is an end-of-block marker at the start of the line.
fn line(
    bits: &mut Bits,
    reference: &[u32],
    current: &mut Vec<u32>,
    width: u32,
) -> Result<bool, ()> {
    // a0 starts on an imaginary white pel before the first one.
    let mut a0: i64 = -1;
    let mut black = false;
    let w = i64::from(width);
    while a0 < w {
        match mode::decode(bits).ok_or(())? {
            Mode::Pass => {
                let (_, b2) = b1_b2(reference, a0, black, width);
                a0 = i64::from(b2);
            }
            Mode::Horizontal => {
                let start = a0.max(0);
                let a1 = start + i64::from(run(bits, black)?);
                let a2 = a1 + i64::from(run(bits, !black)?);
                if a2 > w {
                    // Runs past the right edge: clip (a few encoders pad the last run).
                    if a1 < w {
                        current.push(a1 as u32);
                    }
                    return Ok(true);
                }
                current.push(a1 as u32);
                if a2 < w {
                    current.push(a2 as u32);
                }
                a0 = a2;
            }
            Mode::Vertical(d) => {
                let (b1, _) = b1_b2(reference, a0, black, width);
                let a1 = i64::from(b1) + i64::from(d);
                if a1 < a0.max(0) || a1 > w {
                    return Err(());
                }
                if a1 < w {
                    current.push(a1 as u32);
                }
                a0 = a1;
                black = !black;
            }
            Mode::EOF if a0 < 0 => return Ok(false),
            Mode::EOF | Mode::Extension => return Err(()),
        }
    }
    Ok(true)
}

/// b1: the first change on the reference line right of a0 to the colour opposite a0's (to
/// black at even positions of the list, to white at odd ones); b2: the change after it. Both
/// are the line's width when missing.
fn b1_b2(reference: &[u32], a0: i64, black: bool, width: u32) -> (u32, u32) {
    let want = usize::from(black);
    let mut i = reference.partition_point(|&e| i64::from(e) <= a0);
    if i % 2 != want {
        i += 1;
    }
    let b1 = reference.get(i).copied().unwrap_or(width);
    let b2 = reference.get(i + 1).copied().unwrap_or(width);
    (b1, b2)
}

/// A run length: make-up codes (64 and more) until a terminating code.
fn run(bits: &mut Bits, black: bool) -> Result<u32, ()> {
    let mut sum = 0u32;
    loop {
        let n = if black {
            black::decode(bits)
        } else {
            white::decode(bits)
        }
        .ok_or(())?;
        sum = sum.checked_add(u32::from(n)).ok_or(())?;
        if n < 64 {
            return Ok(sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes rows with the `fax` crate's G4 encoder and decodes them back.
    fn round_trip(rows: &[Vec<bool>], byte_align: bool) -> Vec<Vec<u8>> {
        use fax::{encoder::Encoder, Color, VecWriter};
        let width = rows[0].len();
        let mut enc = Encoder::new(VecWriter::new());
        for r in rows {
            let pels = r
                .iter()
                .map(|&b| if b { Color::Black } else { Color::White });
            enc.encode_line(pels, width as u16).unwrap();
        }
        let data = enc.finish().unwrap().finish();
        let p = Params {
            width: width as u32,
            height: rows.len() as u32,
            rows: rows.len() as u32,
            byte_align,
            black: 0,
            white: 255,
        };
        let mut out = Vec::new();
        decode_g4(&data, &p, |_, px| out.push(px.to_vec())).unwrap();
        out
    }

    #[test]
    fn decodes_what_fax_encodes() {
        let rows: Vec<Vec<bool>> = (0..40)
            .map(|y| {
                (0..173)
                    .map(|x| (x * 7 + y * 3) % 11 < 4 || x == 0)
                    .collect()
            })
            .collect();
        let got = round_trip(&rows, false);
        for (y, (r, g)) in rows.iter().zip(&got).enumerate() {
            let want: Vec<u8> = r.iter().map(|&b| if b { 0 } else { 255 }).collect();
            assert_eq!(&want, g, "row {y}");
        }
    }

    /// Two black rows 8 pels wide: horizontal mode (`001`, white 0 `00110101`, black 8
    /// `000101`), then V0 V0 (`11`). With `/EncodedByteAlign` each row starts a new byte.
    #[test]
    fn byte_aligned_rows_and_short_rows() {
        let mut p = Params {
            width: 8,
            height: 2,
            rows: 2,
            byte_align: true,
            black: 0,
            white: 255,
        };
        let aligned = [0b0010_0110, 0b1010_0010, 0b1000_0000, 0b1100_0000];
        let mut got = Vec::new();
        decode_g4(&aligned, &p, |_, px| got.push(px.to_vec())).unwrap();
        assert_eq!(got, [vec![0; 8], vec![0; 8]]);
        // Read without the alignment, the second row is lost in the padding.
        p.byte_align = false;
        let mut got = Vec::new();
        let _ = decode_g4(&aligned, &p, |_, px| got.push(px.to_vec()));
        assert_ne!(got.get(1), Some(&vec![0; 8]));
        // /Rows 1 of a 2-row image: one coded row, then white.
        p.rows = 1;
        let mut got = Vec::new();
        decode_g4(&aligned[..3], &p, |_, px| got.push(px.to_vec())).unwrap();
        assert_eq!(got, [vec![0; 8], vec![255; 8]]);
    }

    #[test]
    fn truncated_data_is_an_error() {
        let rows: Vec<Vec<bool>> = (0..64)
            .map(|y| (0..200).map(|x| (x + y) % 9 < 3).collect())
            .collect();
        use fax::{encoder::Encoder, Color, VecWriter};
        let mut enc = Encoder::new(VecWriter::new());
        for r in &rows {
            let pels = r
                .iter()
                .map(|&b| if b { Color::Black } else { Color::White });
            enc.encode_line(pels, 200).unwrap();
        }
        let data = enc.finish().unwrap().finish();
        let p = Params {
            width: 200,
            height: 64,
            rows: 64,
            byte_align: false,
            black: 0,
            white: 255,
        };
        let err = decode_g4(&data[..data.len() / 2], &p, |_, _| {}).unwrap_err();
        assert!(err.contains("ends") || err.contains("corrupt"), "{err}");
    }
}
