//! Orientation policy: which way up a page (or a lone line) is read. Pure decisions on the
//! classifier's votes, so they are tested without a model.

use super::ctc::Reading;
use super::geometry::{dist, order_corners, Quad};

/// A single line is turned over when the classifier is at least this sure (the reference's).
const CLS_THRESH: f32 = 0.9;
/// How many of a page's longest lines vote on its orientation: the page decides for all its
/// lines, and long lines are classified more reliably than short fragments.
const VOTERS: usize = 8;
/// A lone line the classifier has any doubt about is read both ways.
const DOUBT: f32 = 0.5;
/// How much more confident the turned-over reading of a lone line must be to replace the
/// classifier's choice. A line that reads the same both ways (`6`/`9`, `NO`/`ON`) is read about
/// equally sure either way, and a tie is no evidence for turning it. On the dev captchas and
/// receipt lines read both ways (41 lines, `ocrbox ocr` with the two readings logged), where
/// the turned reading won by 0.10–0.45 (8 lines) it was right or nearer the truth in 7 and as
/// wrong in 1; where it won by under 0.002 (2 lines) it was wrong.
const TURN_MARGIN: f32 = 0.05;
/// A box takes part in the quarter-turn vote ([`sideways`]) when one side is at least this many
/// times the other: a line of text, not a lone character or a short word (a digit's box is up to
/// ~2× as tall as wide, and a captcha split into characters must not turn the image).
const LINE_ASPECT: f32 = 2.5;

/// The indices of the lines that vote: the [`VOTERS`] widest.
pub fn voters(widths: &[u32]) -> Vec<usize> {
    let mut voters: Vec<usize> = (0..widths.len()).collect();
    voters.sort_by_key(|&i| std::cmp::Reverse(widths[i]));
    voters.truncate(VOTERS);
    voters
}

/// What to do with an image's lines, from the votes `(line width, P(upside down))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Turn every line over before reading it.
    pub flip_all: bool,
    /// The image is a page with more than one line, and it is upside down: it is turned over
    /// and its text found again (see `Engine::recognize`).
    pub turned_page: bool,
    /// The image has one line and the classifier had doubts: read it both ways and keep the
    /// more confident reading ([`better`]).
    pub read_both_ways: bool,
}

/// Decides from the voters' `(width, P(upside down))` on an image of `lines` lines.
pub fn decide(votes: &[(u32, f32)], lines: usize) -> Decision {
    match votes {
        [(_, p)] if lines == 1 => Decision {
            flip_all: *p > CLS_THRESH,
            turned_page: false,
            read_both_ways: doubtful(*p),
        },
        _ => {
            let flip = page_upside_down(votes);
            Decision {
                flip_all: flip,
                turned_page: flip,
                read_both_ways: false,
            }
        }
    }
}

/// Whether a lone line of this `P(upside down)` should also be read turned over.
pub fn doubtful(p: f32) -> bool {
    p > DOUBT
}

/// The page-level vote: lines weighted by length. One wrongly turned line costs little; a page
/// read bottom-to-top with every line garbled costs everything.
fn page_upside_down(votes: &[(u32, f32)]) -> bool {
    votes
        .iter()
        .map(|&(w, p)| w as f32 * (p - 0.5))
        .sum::<f32>()
        > 0.0
}

/// Of a line's reading and its reading turned over, the more confident; `turned` must win by
/// [`TURN_MARGIN`].
pub fn better(upright: Reading, turned: Reading) -> Reading {
    if turned.confidence > upright.confidence + TURN_MARGIN {
        turned
    } else {
        upright
    }
}

/// Whether an image's text runs up or down the page (a page scanned or photographed a quarter
/// turn off): its tall line-shaped boxes ([`LINE_ASPECT`]) are longer in all than its wide ones.
/// Such a page is read turned a quarter counter-clockwise (see `Engine::recognize`): its lines
/// then come out in order, and the page vote ([`decide`]) settles which of the two quarter
/// turns it was.
pub fn sideways(quads: &[Quad]) -> bool {
    let (mut tall, mut wide) = (0.0, 0.0);
    for q in quads {
        let w = dist(q[0], q[1]).max(dist(q[3], q[2]));
        let h = dist(q[0], q[3]).max(dist(q[1], q[2]));
        if h >= LINE_ASPECT * w {
            tall += h;
        } else if w >= LINE_ASPECT * h {
            wide += w;
        }
    }
    tall > wide
}

/// A quad of the image read, in pixels of the `w`×`h` source it was made from by `turns`
/// quarter turns counter-clockwise (1: `rotate270`, 2: `rotate180`, 3: both), corners ordered
/// top-left first in the source's axes.
pub fn to_source(q: &Quad, turns: usize, w: u32, h: u32) -> Quad {
    let mut q = *q;
    if turns >= 2 {
        // The half turn came last, in a frame that is `h` wide after a quarter turn.
        let (fw, fh) = if turns == 3 { (h, w) } else { (w, h) };
        q = turn(&q, fw, fh);
    }
    if turns % 2 == 1 {
        // Pixel (x, y) of the source is (y, w − 1 − x) a quarter turn on.
        let w = (w - 1) as f32;
        q = q.map(|[x, y]| [w - y, x]);
    }
    order_corners(q)
}

/// A quad of an upside-down `w`×`h` page, expressed in the page's own (turned) frame.
pub fn turn(q: &Quad, w: u32, h: u32) -> Quad {
    let (w, h) = ((w - 1) as f32, (h - 1) as f32);
    // Turning 180° maps corners br, bl, tl, tr onto tl, tr, br, bl.
    [q[2], q[3], q[0], q[1]].map(|[x, y]| [w - x, h - y])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(text: &str, confidence: f32) -> Reading {
        Reading {
            text: text.into(),
            confidence,
        }
    }

    #[test]
    fn the_widest_lines_vote() {
        let widths: Vec<u32> = (1..=12).collect();
        let v = voters(&widths);
        assert_eq!(v.len(), VOTERS);
        assert!(v.iter().all(|&i| widths[i] > 4));
    }

    #[test]
    fn long_lines_outweigh_short_fragments() {
        // One long upright line against three short lines the classifier thinks are turned.
        let votes = [(900, 0.1), (80, 0.95), (60, 0.9), (70, 0.99)];
        assert!(!decide(&votes, 4).flip_all);
        let votes = [(900, 0.8), (80, 0.3), (60, 0.2)];
        let d = decide(&votes, 3);
        assert!(d.flip_all && d.turned_page && !d.read_both_ways);
    }

    #[test]
    fn a_lone_line_turns_only_when_sure_and_is_read_twice_when_in_doubt() {
        let sure = decide(&[(300, 0.95)], 1);
        assert!(sure.flip_all && sure.read_both_ways && !sure.turned_page);
        let doubt = decide(&[(300, 0.7)], 1);
        assert!(!doubt.flip_all && doubt.read_both_ways);
        let upright = decide(&[(300, 0.2)], 1);
        assert_eq!(
            upright,
            Decision {
                flip_all: false,
                turned_page: false,
                read_both_ways: false
            }
        );
        assert!(!decide(&[], 0).flip_all);
        assert!(doubtful(0.6) && !doubtful(0.5));
    }

    #[test]
    fn the_more_confident_reading_wins() {
        assert_eq!(better(reading("ab", 0.8), reading("qe", 0.6)).text, "ab");
        assert_eq!(better(reading("ab", 0.5), reading("qe", 0.9)).text, "qe");
        assert_eq!(better(reading("ab", 0.5), reading("qe", 0.5)).text, "ab");
        // A line that reads the same either way stays as the classifier had it.
        assert_eq!(better(reading("6", 0.9979), reading("9", 0.999)).text, "6");
    }

    #[test]
    fn turning_maps_corners_into_the_turned_frame() {
        let q = [[10.0, 20.0], [50.0, 20.0], [50.0, 30.0], [10.0, 30.0]];
        let t = turn(&q, 101, 41);
        assert_eq!(t, [[50.0, 10.0], [90.0, 10.0], [90.0, 20.0], [50.0, 20.0]]);
        assert_eq!(turn(&t, 101, 41), q);
    }

    #[test]
    fn points_of_a_turned_image_map_back_to_the_source() {
        use image::{imageops, GrayImage, Luma};
        // Every pixel of a 7×4 source holds its own index: wherever a turn puts it, mapping
        // its place back must land on where it came from.
        let src = GrayImage::from_fn(7, 4, |x, y| Luma([(x + 7 * y) as u8]));
        let turned = [
            src.clone(),
            imageops::rotate270(&src),
            imageops::rotate180(&src),
            imageops::rotate180(&imageops::rotate270(&src)),
        ];
        for (turns, img) in turned.iter().enumerate() {
            for (x, y, v) in img.enumerate_pixels() {
                let p = [x as f32, y as f32];
                let back = to_source(&[p; 4], turns, 7, 4)[0];
                let i = u32::from(v[0]);
                assert_eq!(
                    back,
                    [(i % 7) as f32, (i / 7) as f32],
                    "{turns} turns: ({x}, {y})"
                );
            }
        }
        // A box comes back with its corners in the source's order.
        let q = [[1.0, 0.0], [3.0, 0.0], [3.0, 6.0], [1.0, 6.0]];
        assert_eq!(
            to_source(&q, 1, 7, 4),
            [[0.0, 1.0], [6.0, 1.0], [6.0, 3.0], [0.0, 3.0]]
        );
    }

    #[test]
    fn pages_of_tall_lines_are_sideways() {
        let tall = |x: f32, len: f32| [[x, 0.0], [x + 20.0, 0.0], [x + 20.0, len], [x, len]];
        let wide = |y: f32, len: f32| [[0.0, y], [len, y], [len, y + 20.0], [0.0, y + 20.0]];
        assert!(sideways(&[
            tall(0.0, 400.0),
            tall(40.0, 300.0),
            wide(0.0, 120.0)
        ]));
        assert!(!sideways(&[
            wide(0.0, 400.0),
            wide(40.0, 300.0),
            tall(0.0, 120.0)
        ]));
        // Characters standing apart (a captcha split up) and near-square boxes abstain.
        let chars: Vec<Quad> = (0..6).map(|i| tall(i as f32 * 30.0, 45.0)).collect();
        assert!(!sideways(&chars));
        assert!(!sideways(&[]));
    }
}
