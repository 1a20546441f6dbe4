//! Plane geometry for text boxes: connected regions, convex hull, minimum-area rectangle,
//! unclip (polygon offset), corner ordering and perspective transforms.

/// A point in pixel coordinates (x, y).
pub type Point = [f32; 2];

/// A quadrilateral, corners in order top-left, top-right, bottom-right, bottom-left.
pub type Quad = [Point; 4];

/// A rotated rectangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotRect {
    pub center: Point,
    /// Extent along `axis` and along its normal.
    pub size: [f32; 2],
    /// Unit vector of the first side.
    pub axis: Point,
}

impl RotRect {
    /// The shorter side.
    pub fn short_side(&self) -> f32 {
        self.size[0].min(self.size[1])
    }

    /// Corners, ordered top-left, top-right, bottom-right, bottom-left.
    pub fn corners(&self) -> Quad {
        let [cx, cy] = self.center;
        let [ux, uy] = self.axis;
        let (vx, vy) = (-uy, ux);
        let (hw, hh) = (self.size[0] / 2.0, self.size[1] / 2.0);
        let pts = [
            [cx - ux * hw - vx * hh, cy - uy * hw - vy * hh],
            [cx + ux * hw - vx * hh, cy + uy * hw - vy * hh],
            [cx + ux * hw + vx * hh, cy + uy * hw + vy * hh],
            [cx - ux * hw + vx * hh, cy - uy * hw + vy * hh],
        ];
        order_corners(pts)
    }

    /// The rectangle grown by `d` on every side. For a rectangle this is exactly what a
    /// round-joined polygon offset followed by a minimum-area rectangle gives, which is how the
    /// reference implementation "unclips" a box.
    pub fn grown(&self, d: f32) -> RotRect {
        RotRect {
            size: [self.size[0] + 2.0 * d, self.size[1] + 2.0 * d],
            ..*self
        }
    }
}

/// Eight-connected regions of `true` pixels in a row-major `w`×`h` mask. Each region is given
/// by the leftmost and rightmost pixel of each of its rows: enough for its convex hull.
pub fn regions(mask: &[bool], w: usize, h: usize) -> Vec<Vec<Point>> {
    let mut label = vec![u32::MAX; w * h];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !mask[start] || label[start] != u32::MAX {
            continue;
        }
        let id = out.len() as u32;
        // Per row: (min x, max x), rows relative to the start row (a region only grows down
        // from its first pixel in raster order).
        let y0 = start / w;
        let mut rows: Vec<(usize, usize)> = Vec::new();
        label[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            let (x, y) = (p % w, p / w);
            let r = y - y0;
            if rows.len() <= r {
                rows.resize(r + 1, (usize::MAX, 0));
            }
            rows[r].0 = rows[r].0.min(x);
            rows[r].1 = rows[r].1.max(x);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= w as i64 || ny >= h as i64 {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    if mask[q] && label[q] == u32::MAX {
                        label[q] = id;
                        stack.push(q);
                    }
                }
            }
        }
        let mut pts = Vec::with_capacity(rows.len() * 2);
        for (r, &(lo, hi)) in rows.iter().enumerate() {
            if lo == usize::MAX {
                continue;
            }
            let y = (y0 + r) as f32;
            pts.push([lo as f32, y]);
            if hi != lo {
                pts.push([hi as f32, y]);
            }
        }
        out.push(pts);
    }
    out
}

fn cross(o: Point, a: Point, b: Point) -> f32 {
    (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
}

/// Convex hull (Andrew's monotone chain), counter-clockwise in a y-up frame, no repeated point.
pub fn convex_hull(points: &[Point]) -> Vec<Point> {
    let mut pts = points.to_vec();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    pts.dedup();
    if pts.len() < 3 {
        return pts;
    }
    let mut hull: Vec<Point> = Vec::with_capacity(pts.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &Point>> = if pass == 0 {
            Box::new(pts.iter())
        } else {
            Box::new(pts.iter().rev())
        };
        for &p in iter {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// Minimum-area enclosing rectangle (rotating calipers over the hull's edges).
pub fn min_area_rect(points: &[Point]) -> RotRect {
    let hull = convex_hull(points);
    match hull.len() {
        0 => {
            return RotRect {
                center: [0.0, 0.0],
                size: [0.0, 0.0],
                axis: [1.0, 0.0],
            }
        }
        1 => {
            return RotRect {
                center: hull[0],
                size: [0.0, 0.0],
                axis: [1.0, 0.0],
            }
        }
        _ => {}
    }
    let mut best: Option<(f32, RotRect)> = None;
    for i in 0..hull.len() {
        let a = hull[i];
        let b = hull[(i + 1) % hull.len()];
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len == 0.0 {
            continue;
        }
        let u = [dx / len, dy / len];
        let v = [-u[1], u[0]];
        let (mut u0, mut u1, mut v0, mut v1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for p in &hull {
            let pu = p[0] * u[0] + p[1] * u[1];
            let pv = p[0] * v[0] + p[1] * v[1];
            u0 = u0.min(pu);
            u1 = u1.max(pu);
            v0 = v0.min(pv);
            v1 = v1.max(pv);
        }
        let area = (u1 - u0) * (v1 - v0);
        if best.as_ref().is_none_or(|(b, _)| area < *b) {
            let (cu, cv) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
            best = Some((
                area,
                RotRect {
                    center: [cu * u[0] + cv * v[0], cu * u[1] + cv * v[1]],
                    size: [u1 - u0, v1 - v0],
                    axis: u,
                },
            ));
        }
    }
    let mut r = best.map(|(_, r)| r).unwrap_or(RotRect {
        center: hull[0],
        size: [0.0, 0.0],
        axis: [1.0, 0.0],
    });
    // Normalise so the first side is the one closest to horizontal: keeps `size[0]` the
    // text-direction length for ordinary lines.
    if r.axis[0].abs() < r.axis[1].abs() {
        r = RotRect {
            center: r.center,
            size: [r.size[1], r.size[0]],
            axis: [-r.axis[1], r.axis[0]],
        };
    }
    if r.axis[0] < 0.0 {
        r.axis = [-r.axis[0], -r.axis[1]];
    }
    r
}

/// Orders four corners as top-left, top-right, bottom-right, bottom-left: the two leftmost
/// points make the left side (upper one first), the two rightmost the right side. This is the
/// reference's rule, which stays stable for boxes tilted either way.
pub fn order_corners(mut pts: Quad) -> Quad {
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]));
    let (tl, bl) = if pts[0][1] <= pts[1][1] {
        (pts[0], pts[1])
    } else {
        (pts[1], pts[0])
    };
    let (tr, br) = if pts[2][1] <= pts[3][1] {
        (pts[2], pts[3])
    } else {
        (pts[3], pts[2])
    };
    [tl, tr, br, bl]
}

/// Polygon area (shoelace, absolute) and perimeter.
pub fn area_perimeter(poly: &[Point]) -> (f32, f32) {
    let n = poly.len();
    let (mut a, mut p) = (0.0f32, 0.0f32);
    for i in 0..n {
        let (x0, y0) = (poly[i][0], poly[i][1]);
        let (x1, y1) = (poly[(i + 1) % n][0], poly[(i + 1) % n][1]);
        a += x0 * y1 - x1 * y0;
        p += ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
    }
    (a.abs() / 2.0, p)
}

/// Unclip distance of the DB method: area × ratio / perimeter.
pub fn unclip_distance(rect: &RotRect, ratio: f32) -> f32 {
    let (a, p) = area_perimeter(&rect.corners());
    if p == 0.0 {
        0.0
    } else {
        a * ratio / p
    }
}

/// Whether `p` is inside (or on) the convex quad.
pub fn in_convex_quad(q: &Quad, p: Point) -> bool {
    let mut sign = 0.0f32;
    for i in 0..4 {
        let c = cross(q[i], q[(i + 1) % 4], p);
        if c.abs() < 1e-3 {
            continue;
        }
        if sign == 0.0 {
            sign = c.signum();
        } else if c.signum() != sign {
            return false;
        }
    }
    true
}

/// Euclidean distance.
pub fn dist(a: Point, b: Point) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// A 3×3 projective transform, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Homography(pub [f32; 9]);

impl Homography {
    /// The transform taking each `from[i]` to `to[i]` (four point pairs, no three collinear).
    pub fn from_points(from: &Quad, to: &Quad) -> Option<Homography> {
        // Solve the 8×8 system A·h = b for h = (h0..h7), h8 = 1.
        let mut m = [[0.0f64; 9]; 8];
        for i in 0..4 {
            let (x, y) = (from[i][0] as f64, from[i][1] as f64);
            let (u, v) = (to[i][0] as f64, to[i][1] as f64);
            m[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            m[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        for col in 0..8 {
            let pivot = (col..8).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))?;
            if m[pivot][col].abs() < 1e-12 {
                return None;
            }
            m.swap(col, pivot);
            let pivot_row = m[col];
            for (row, r) in m.iter_mut().enumerate() {
                if row != col {
                    let f = r[col] / pivot_row[col];
                    for (v, p) in r.iter_mut().zip(pivot_row.iter()).skip(col) {
                        *v -= f * p;
                    }
                }
            }
        }
        let mut h = [1.0f32; 9];
        for (i, (hv, r)) in h.iter_mut().zip(m.iter()).enumerate() {
            *hv = (r[8] / r[i]) as f32;
        }
        Some(Homography(h))
    }

    /// Applies the transform to a point.
    pub fn apply(&self, p: Point) -> Point {
        let h = &self.0;
        let w = h[6] * p[0] + h[7] * p[1] + h[8];
        [
            (h[0] * p[0] + h[1] * p[1] + h[2]) / w,
            (h[3] * p[0] + h[4] * p[1] + h[5]) / w,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn regions_are_eight_connected_and_separate() {
        // Two blobs: a diagonal pair (one region) and a lone pixel far away.
        #[rustfmt::skip]
        let m = [
            1, 0, 0, 0, 0,
            0, 1, 0, 0, 1,
            0, 0, 0, 0, 0,
        ];
        let mask: Vec<bool> = m.iter().map(|&v| v == 1).collect();
        let r = regions(&mask, 5, 3);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0], vec![[0.0, 0.0], [1.0, 1.0]]);
        assert_eq!(r[1], vec![[4.0, 1.0]]);
    }

    #[test]
    fn region_rows_keep_extremes_only() {
        let mask = vec![true; 4 * 2];
        let r = regions(&mask, 4, 2);
        assert_eq!(
            r,
            vec![vec![[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [3.0, 1.0]]]
        );
    }

    #[test]
    fn hull_drops_interior_and_collinear_points() {
        let pts = [
            [0.0, 0.0],
            [2.0, 0.0],
            [1.0, 0.0],
            [2.0, 2.0],
            [0.0, 2.0],
            [1.0, 1.0],
        ];
        let mut h = convex_hull(&pts);
        h.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        assert_eq!(h, vec![[0.0, 0.0], [0.0, 2.0], [2.0, 0.0], [2.0, 2.0]]);
    }

    #[test]
    fn min_area_rect_of_axis_aligned_box() {
        let pts = [
            [10.0, 5.0],
            [30.0, 5.0],
            [30.0, 9.0],
            [10.0, 9.0],
            [20.0, 7.0],
        ];
        let r = min_area_rect(&pts);
        assert!(close(r.size[0], 20.0) && close(r.size[1], 4.0), "{r:?}");
        assert!(close(r.center[0], 20.0) && close(r.center[1], 7.0));
        let c = r.corners();
        assert_eq!(c, [[10.0, 5.0], [30.0, 5.0], [30.0, 9.0], [10.0, 9.0]]);
    }

    #[test]
    fn min_area_rect_of_rotated_box() {
        // A 10×2 rectangle rotated by 30°, hand-checked: its rectangle is itself.
        let (s, c) = (30f32.to_radians().sin(), 30f32.to_radians().cos());
        let rect = [[0.0, 0.0], [10.0, 0.0], [10.0, 2.0], [0.0, 2.0]];
        let pts: Vec<Point> = rect
            .iter()
            .map(|p| [p[0] * c - p[1] * s, p[0] * s + p[1] * c])
            .collect();
        let r = min_area_rect(&pts);
        assert!(close(r.size[0], 10.0) && close(r.size[1], 2.0), "{r:?}");
        assert!(close(r.axis[0], c) && close(r.axis[1], s), "{r:?}");
    }

    #[test]
    fn unclip_grows_each_side_by_area_ratio_over_perimeter() {
        let r = min_area_rect(&[[0.0, 0.0], [100.0, 0.0], [100.0, 10.0], [0.0, 10.0]]);
        // area 1000, perimeter 220, ratio 1.6 → 7.2727…
        let d = unclip_distance(&r, 1.6);
        assert!(close(d, 1000.0 * 1.6 / 220.0));
        let g = r.grown(d);
        assert!(close(g.size[0], 100.0 + 2.0 * d) && close(g.size[1], 10.0 + 2.0 * d));
        assert_eq!(g.center, r.center);
    }

    #[test]
    fn corners_order_is_stable_for_tilts() {
        let q = order_corners([[10.0, 12.0], [0.0, 10.0], [1.0, 0.0], [11.0, 2.0]]);
        assert_eq!(q, [[1.0, 0.0], [11.0, 2.0], [10.0, 12.0], [0.0, 10.0]]);
    }

    #[test]
    fn point_in_quad() {
        let q = [[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]];
        assert!(in_convex_quad(&q, [2.0, 1.0]));
        assert!(in_convex_quad(&q, [4.0, 2.0]));
        assert!(!in_convex_quad(&q, [5.0, 1.0]));
    }

    #[test]
    fn homography_maps_corners() {
        let from = [[10.0, 10.0], [50.0, 20.0], [45.0, 40.0], [5.0, 30.0]];
        let to = [[0.0, 0.0], [40.0, 0.0], [40.0, 20.0], [0.0, 20.0]];
        let h = Homography::from_points(&from, &to).unwrap();
        for i in 0..4 {
            let p = h.apply(from[i]);
            assert!(close(p[0], to[i][0]) && close(p[1], to[i][1]), "{p:?}");
        }
    }
}
