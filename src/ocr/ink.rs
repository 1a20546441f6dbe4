//! Which pixels of a recogniser strip are ink: what word-space and leader restoration measure.

use image::RgbImage;

/// A strip's ink, row by row.
pub(super) struct Ink {
    pub width: usize,
    pub height: usize,
    /// `width × height`, true where the pixel is ink.
    pub dark: Vec<bool>,
}

impl Ink {
    /// Otsu's threshold on the grey levels, the minority class taken as ink (light text on a
    /// dark ground works too).
    pub fn of(strip: &RgbImage) -> Ink {
        Ink::split(strip, Threshold::of(strip))
    }

    /// The ink of `img` by a threshold found elsewhere (a mark's surroundings hold too little
    /// ink for a threshold of their own).
    pub fn split(img: &RgbImage, t: Threshold) -> Ink {
        Ink {
            width: img.width() as usize,
            height: img.height() as usize,
            dark: img
                .pixels()
                .map(|p| (grey(p) <= t.level) == t.ink_is_dark)
                .collect(),
        }
    }

    /// Columns that hold no ink.
    pub fn blank_columns(&self) -> Vec<bool> {
        let mut blank = vec![true; self.width];
        for (i, &d) in self.dark.iter().enumerate() {
            if d {
                blank[i % self.width] = false;
            }
        }
        blank
    }

    /// The bounding boxes of the 8-connected blots of ink, left to right.
    pub fn blots(&self) -> Vec<Blot> {
        let (w, h) = (self.width, self.height);
        let mut seen = vec![false; self.dark.len()];
        let mut blots = Vec::new();
        let mut stack = Vec::new();
        for start in 0..self.dark.len() {
            if !self.dark[start] || seen[start] {
                continue;
            }
            seen[start] = true;
            stack.push(start);
            let (sx, sy) = (start % w, start / w);
            let mut b = Blot {
                x0: sx,
                x1: sx,
                y0: sy,
                y1: sy,
            };
            while let Some(i) = stack.pop() {
                let (x, y) = (i % w, i / w);
                b.x0 = b.x0.min(x);
                b.x1 = b.x1.max(x);
                b.y0 = b.y0.min(y);
                b.y1 = b.y1.max(y);
                for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        let j = ny * w + nx;
                        if self.dark[j] && !seen[j] {
                            seen[j] = true;
                            stack.push(j);
                        }
                    }
                }
            }
            blots.push(b);
        }
        blots.sort_by_key(|b| b.x0 + b.x1);
        blots
    }
}

/// Where ink and paper part.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Threshold {
    level: u8,
    ink_is_dark: bool,
}

impl Threshold {
    /// Otsu's threshold on the grey levels of `img`, the minority class taken as ink.
    pub fn of(img: &RgbImage) -> Threshold {
        let grey: Vec<u8> = img.pixels().map(grey).collect();
        let level = otsu(&grey);
        let dark = grey.iter().filter(|&&g| g <= level).count();
        Threshold {
            level,
            ink_is_dark: dark * 2 <= grey.len(),
        }
    }

    /// A threshold that takes fainter ink too: `share` of the way from the mean ink level of
    /// `img` to its mean paper level (Otsu's lies about halfway).
    pub fn faint(img: &RgbImage, share: f32) -> Threshold {
        let t = Threshold::of(img);
        let (mut sum, mut n) = ([0u64; 2], [0u64; 2]);
        for p in img.pixels() {
            let g = grey(p);
            let is_ink = usize::from((g <= t.level) == t.ink_is_dark);
            sum[is_ink] += u64::from(g);
            n[is_ink] += 1;
        }
        if n[0] == 0 || n[1] == 0 {
            return t;
        }
        let (paper, ink) = (sum[0] as f32 / n[0] as f32, sum[1] as f32 / n[1] as f32);
        Threshold {
            level: (ink + share * (paper - ink)).round().clamp(0.0, 255.0) as u8,
            ink_is_dark: t.ink_is_dark,
        }
    }
}

fn grey(p: &image::Rgb<u8>) -> u8 {
    ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8
}

/// A connected blot of ink: its bounding box in strip pixels, inclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Blot {
    pub x0: usize,
    pub x1: usize,
    pub y0: usize,
    pub y1: usize,
}

impl Blot {
    pub fn width(&self) -> usize {
        self.x1 - self.x0 + 1
    }
    pub fn height(&self) -> usize {
        self.y1 - self.y0 + 1
    }
    pub fn cx(&self) -> f32 {
        (self.x0 + self.x1) as f32 / 2.0
    }
    pub fn cy(&self) -> f32 {
        (self.y0 + self.y1) as f32 / 2.0
    }
}

/// Otsu's threshold: the grey level that best splits the histogram in two.
fn otsu(grey: &[u8]) -> u8 {
    let mut hist = [0u64; 256];
    for &g in grey {
        hist[g as usize] += 1;
    }
    let total = grey.len() as f64;
    let sum: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &n)| i as f64 * n as f64)
        .sum();
    let (mut w0, mut sum0, mut best, mut best_t) = (0.0, 0.0, -1.0, 0u8);
    for (t, &n) in hist.iter().enumerate() {
        w0 += n as f64;
        sum0 += t as f64 * n as f64;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let (m0, m1) = (sum0 / w0, (sum - sum0) / w1);
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_t = t as u8;
        }
    }
    best_t
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn blots_are_found_left_to_right_with_their_boxes() {
        let mut s = RgbImage::from_pixel(30, 10, Rgb([250, 250, 250]));
        for (x, y) in [(20, 2), (21, 3), (3, 5), (4, 5), (3, 6)] {
            s.put_pixel(x, y, Rgb([10, 10, 10]));
        }
        let ink = Ink::of(&s);
        let b = ink.blots();
        assert_eq!(b.len(), 2);
        assert_eq!((b[0].x0, b[0].x1, b[0].y0, b[0].y1), (3, 4, 5, 6));
        // Diagonal neighbours join.
        assert_eq!((b[1].x0, b[1].x1, b[1].y0, b[1].y1), (20, 21, 2, 3));
        let blank = ink.blank_columns();
        assert!(blank[0] && !blank[3] && !blank[21] && blank[29]);
    }
}
