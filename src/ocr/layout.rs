//! Reading order: boxes grouped into visual lines (top to bottom), each left to right.

use super::geometry::{dist, Quad};

struct Geo {
    cx: f32,
    cy: f32,
    h: f32,
    /// Length along the top edge.
    len: f32,
    x0: f32,
    slope: f32,
}

fn geo(q: &Quad) -> Geo {
    let cx = q.iter().map(|p| p[0]).sum::<f32>() / 4.0;
    let cy = q.iter().map(|p| p[1]).sum::<f32>() / 4.0;
    let h = (dist(q[0], q[3]) + dist(q[1], q[2])) / 2.0;
    let dx = q[1][0] - q[0][0];
    let slope = if dx.abs() > 1.0 {
        (q[1][1] - q[0][1]) / dx
    } else {
        0.0
    };
    let x0 = q.iter().map(|p| p[0]).fold(f32::MAX, f32::min);
    Geo {
        cx,
        cy,
        h,
        len: dist(q[0], q[1]),
        x0,
        slope,
    }
}

/// Groups boxes into lines; returns, per line in reading order, the box indices left to right.
///
/// A box joins a line when its centre lies within half a text height of where the line's last
/// box, extended along its own slope, says it should be: this keeps slightly rotated pages
/// (whose lines drift up or down across the page) from interleaving. A box less than two
/// thirds the height of the line's last box (or more than 1.5× it) also joins when its middle
/// half lies within the taller one's height: a licence plate's country code (28 px high,
/// 15 px below the centre of its 64 px registration) was read as a line of its own after it.
///
/// A short box (under [`LONG`] times as long as high) takes the page's slope, not its own: a
/// lone quantity's box is level however the page lies, and extended level from it a row's
/// prices fell to a line of their own. Receipt pages (`ocrbox eval`, CER): upright 4.84 →
/// 4.45 %; turned 3° 6.18 → 4.93, 7° 7.44 → 4.96, 15° 8.40 → 5.09, 45° 11.5 → 8.0 %.
pub fn lines(quads: &[Quad]) -> Vec<Vec<usize>> {
    let mut g: Vec<Geo> = quads.iter().map(geo).collect();
    // A short box's own slope says little (a lone `1` is level however the page lies): it takes
    // the page's, the median slope of its long boxes by length.
    let long = |g: &Geo| g.len >= LONG * g.h;
    let mut slopes: Vec<(f32, f32)> = g
        .iter()
        .filter(|g| long(g))
        .map(|g| (g.slope, g.len))
        .collect();
    let page = weighted_median(&mut slopes);
    for g in g.iter_mut().filter(|g| !long(g)) {
        g.slope = page;
    }
    let mut order: Vec<usize> = (0..quads.len()).collect();
    order.sort_by(|&a, &b| g[a].x0.total_cmp(&g[b].x0));
    let mut out: Vec<Vec<usize>> = Vec::new();
    for i in order {
        let fits = |line: &Vec<usize>| {
            let last = &g[*line.last().expect("lines are never empty")];
            let expected = last.cy + last.slope * (g[i].cx - last.cx);
            let off = (g[i].cy - expected).abs();
            let (small, big) = (g[i].h.min(last.h), g[i].h.max(last.h));
            // Or a small box beside a tall one (a plate's country code, a price in a larger
            // font) whose middle half lies within the tall one's height.
            off <= 0.5 * small || off + 0.25 * small <= 0.5 * big
        };
        // Prefer the closest fitting line.
        let best = out
            .iter()
            .enumerate()
            .filter(|(_, l)| fits(l))
            .min_by(|(_, a), (_, b)| {
                let d = |l: &Vec<usize>| (g[*l.last().unwrap_or(&i)].cy - g[i].cy).abs();
                d(a).total_cmp(&d(b))
            })
            .map(|(k, _)| k);
        match best {
            Some(k) => out[k].push(i),
            None => out.push(vec![i]),
        }
    }
    // Lines top to bottom by their first box's centre projected to the page's left edge.
    let key = |l: &Vec<usize>| {
        let f = &g[l[0]];
        f.cy - f.slope * f.cx
    };
    out.sort_by(|a, b| key(a).total_cmp(&key(b)));
    out
}

/// A box at least this many times as long as high has a slope of its own ([`lines`]). Receipt
/// pages upright / turned 7° (CER %) by this bound: 1.5 4.61 / 5.86, 2 4.63 / 5.15, 3 4.45 /
/// 4.96, 5 4.45 / 5.23, 8 4.69 / 5.35 (all of them below the 4.84 / 7.44 of boxes' own slopes).
const LONG: f32 = 3.0;

/// The median of `(value, weight)` pairs by weight (0 if there are none).
fn weighted_median(v: &mut [(f32, f32)]) -> f32 {
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = v.iter().map(|p| p.1).sum::<f32>() / 2.0;
    let mut seen = 0.0;
    for &(value, weight) in v.iter() {
        seen += weight;
        if seen >= half {
            return value;
        }
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: f32, y: f32, w: f32, h: f32) -> Quad {
        [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    }

    #[test]
    fn same_line_boxes_join_left_to_right() {
        let q = [
            rect(200.0, 12.0, 50.0, 20.0),
            rect(10.0, 10.0, 100.0, 20.0),
            rect(10.0, 50.0, 80.0, 20.0),
        ];
        assert_eq!(lines(&q), vec![vec![1, 0], vec![2]]);
    }

    #[test]
    fn tilted_lines_do_not_interleave() {
        // Two lines rising 3 px per 100 px; the right end of line 2 is higher than the left end
        // of line 1 would suggest by y alone.
        let tilt = |x: f32, y: f32, w: f32| -> Quad {
            let d = 0.03 * w;
            [[x, y], [x + w, y - d], [x + w, y - d + 14.0], [x, y + 14.0]]
        };
        let q = [
            tilt(0.0, 100.0, 300.0),
            tilt(400.0, 88.0, 300.0),
            tilt(0.0, 120.0, 300.0),
            tilt(400.0, 108.0, 300.0),
        ];
        assert_eq!(lines(&q), vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn a_short_box_on_a_tilted_page_takes_the_page_slope() {
        // Receipt rows rising 5 px per 100 px: a long item name, a lone quantity `1` and a
        // long price column. Extended level from the `1`, the prices would miss their row.
        let tilt = |x: f32, y: f32, w: f32| -> Quad {
            let d = 0.05 * w;
            [[x, y], [x + w, y - d], [x + w, y - d + 14.0], [x, y + 14.0]]
        };
        // The `1`'s box is level, as a lone digit's box comes out whatever the page's tilt.
        let row = |y: f32| {
            [
                tilt(0.0, y, 300.0),
                rect(400.0, y - 20.0, 14.0, 14.0),
                tilt(600.0, y - 30.0, 300.0),
            ]
        };
        let q: Vec<Quad> = row(100.0).into_iter().chain(row(130.0)).collect();
        assert_eq!(lines(&q), vec![vec![0, 1, 2], vec![3, 4, 5]]);
    }

    #[test]
    fn a_small_box_beside_a_tall_one_joins_its_line() {
        // A country code low beside a plate's registration; a small line just below a tall one
        // stays a line of its own.
        let q = [rect(63.0, 9.0, 320.0, 64.0), rect(15.0, 44.0, 33.0, 28.0)];
        assert_eq!(lines(&q), vec![vec![1, 0]]);
        let q = [rect(10.0, 10.0, 300.0, 40.0), rect(10.0, 48.0, 200.0, 20.0)];
        assert_eq!(lines(&q), vec![vec![0], vec![1]]);
    }

    #[test]
    fn empty_page_has_no_lines() {
        assert!(lines(&[]).is_empty());
    }
}
