//! Wires the stages: decode → detect → crop → classify → recognise → layout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use image::RgbImage;

use super::classify::upside_down;
use super::crop::crop_quad;
use super::detect::{detect, DetParams};
use super::geometry::Quad;
use super::models::{Model, ModelFiles};
use super::preprocess::rotate180;
use super::recognize::{recognize, Charset};
use super::{decode, layout, Limits, Line, OcrError, Page, Timings};

/// Lines whose recognition confidence is below this are dropped (the reference's value).
const DROP_SCORE: f32 = 0.5;
/// A single line is turned over when the classifier is at least this sure (the reference's).
const CLS_THRESH: f32 = 0.9;
/// How many of a page's longest lines vote on its orientation.
const VOTERS: usize = 8;

/// The OCR engine. Share one `Arc<Engine>` across worker threads: the models and their plan
/// caches are read-only apart from the cache itself, which is behind a lock.
pub struct Engine {
    det: Model,
    cls: Model,
    rec: Model,
    charset: Charset,
    det_params: DetParams,
    threads: usize,
}

impl Engine {
    /// Loads the models embedded in the binary.
    pub fn new() -> Result<Engine, OcrError> {
        Engine::from_files(&ModelFiles::embedded())
    }

    /// Loads models from the given files (e.g. `ModelFiles::from_dir`).
    pub fn from_files(files: &ModelFiles) -> Result<Engine, OcrError> {
        Ok(Engine {
            det: Model::load("det", &files.det, 16)?,
            cls: Model::load("cls", &files.cls, 1)?,
            rec: Model::load("rec", &files.rec, 10)?,
            charset: Charset::new(&files.dict),
            det_params: DetParams::default(),
            threads: 1,
        })
    }

    /// Lets one page's lines be classified and recognised on up to `n` threads. The service
    /// keeps 1 (its workers already fill the cores); the CLI uses all cores.
    pub fn with_threads(mut self, n: usize) -> Engine {
        self.threads = n.max(1);
        self
    }

    /// Decodes `bytes` (within `limits`) and reads its text.
    pub fn recognize_bytes(&self, bytes: &[u8], limits: &Limits) -> Result<Page, OcrError> {
        let t = Instant::now();
        let img = decode::decode(bytes, limits)?;
        let decode_time = t.elapsed();
        let mut page = self.recognize(&img)?;
        page.timings.decode = decode_time;
        Ok(page)
    }

    /// Reads the text of an upright-or-upside-down RGB image.
    pub fn recognize(&self, img: &RgbImage) -> Result<Page, OcrError> {
        let mut timings = Timings::default();
        let t = Instant::now();
        let quads = detect(&self.det, img, &self.det_params)?;
        timings.detect = t.elapsed();

        let t = Instant::now();
        let mut crops: Vec<RgbImage> = self.par_map(&quads, |q| Ok(crop_quad(img, q)))?;
        // The page decides for all its lines, so only its longest lines need to vote.
        let mut voters: Vec<usize> = (0..crops.len()).collect();
        voters.sort_by_key(|&i| std::cmp::Reverse(crops[i].width()));
        voters.truncate(VOTERS);
        let votes: Vec<(u32, f32)> = self.par_map(&voters, |&i| {
            Ok((crops[i].width(), upside_down(&self.cls, &crops[i])?))
        })?;
        let lone = crops.len() == 1;
        let flip_all = if lone {
            votes[0].1 > CLS_THRESH
        } else {
            page_upside_down(&votes)
        };
        if flip_all {
            for crop in crops.iter_mut() {
                *crop = rotate180(crop);
            }
        }
        timings.classify = t.elapsed();

        let t = Instant::now();
        let mut texts = self.par_map(&crops, |c| recognize(&self.rec, &self.charset, c))?;
        if let ([crop], [(_, p)]) = (crops.as_slice(), votes.as_slice()) {
            // A lone line has no page to vote with: when the classifier has any doubt, read
            // it both ways and keep the more confident reading.
            if *p > 0.5 {
                texts[0] = self.better_reading(crop, texts[0].clone())?;
            }
        }
        let mut found: Vec<(Quad, String, f32)> = Vec::new();
        for (q, (text, conf)) in quads.iter().zip(texts) {
            if conf >= DROP_SCORE && !text.trim().is_empty() {
                found.push((*q, text, conf));
            }
        }
        if found.is_empty() && small(img) {
            if let Some(line) = self.whole_line(img)? {
                found.push(line);
            }
        }
        timings.recognize = t.elapsed();

        let mut page = assemble(found, flip_all && !lone, img);
        page.timings = timings;
        Ok(page)
    }

    /// Recognises the whole image as one line: detection misses single characters, short wide
    /// images whose text touches the edges, and captcha-like images with noisy backgrounds.
    fn whole_line(&self, img: &RgbImage) -> Result<Option<(Quad, String, f32)>, OcrError> {
        let mut best = recognize(&self.rec, &self.charset, img)?;
        if upside_down(&self.cls, img)? > 0.5 {
            best = self.better_reading(img, best)?;
        }
        let (text, conf) = best;
        let (w, h) = (img.width() as f32, img.height() as f32);
        let quad = [
            [0.0, 0.0],
            [w - 1.0, 0.0],
            [w - 1.0, h - 1.0],
            [0.0, h - 1.0],
        ];
        // Lower bar than for detected lines: there is no other candidate to prefer.
        Ok((conf >= 0.3 && !text.trim().is_empty()).then_some((quad, text, conf)))
    }

    /// `reading` of `line`, or the reading of `line` turned over if that is more confident.
    fn better_reading(
        &self,
        line: &RgbImage,
        reading: (String, f32),
    ) -> Result<(String, f32), OcrError> {
        let other = recognize(&self.rec, &self.charset, &rotate180(line))?;
        Ok(if other.1 > reading.1 { other } else { reading })
    }

    /// Maps `f` over `items` on up to `self.threads` threads, keeping order.
    fn par_map<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> Result<R, OcrError> + Sync,
    ) -> Result<Vec<R>, OcrError> {
        let threads = self.threads.min(items.len());
        if threads <= 1 {
            return items.iter().map(&f).collect();
        }
        let next = AtomicUsize::new(0);
        let mut results: Vec<(usize, Result<R, OcrError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            out.push((i, f(item)));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// Plans currently cached per model (det, cls, rec): for diagnostics and benchmarks.
    pub fn cached_plans(&self) -> [usize; 3] {
        [
            self.det.cached_plans(),
            self.cls.cached_plans(),
            self.rec.cached_plans(),
        ]
    }
}

/// The page-level orientation vote over `(line width, P(upside down))`: lines weighted by
/// length, as long lines are classified more reliably than short fragments. One wrongly turned
/// line costs little; a page read bottom-to-top with every line garbled costs everything.
fn page_upside_down(votes: &[(u32, f32)]) -> bool {
    votes
        .iter()
        .map(|&(w, p)| w as f32 * (p - 0.5))
        .sum::<f32>()
        > 0.0
}

/// A quad of an upside-down page, expressed in the page's own (turned) frame.
fn turn(q: &Quad, img: &RgbImage) -> Quad {
    let (w, h) = ((img.width() - 1) as f32, (img.height() - 1) as f32);
    // Turning 180° maps corners br, bl, tl, tr onto tl, tr, br, bl.
    [q[2], q[3], q[0], q[1]].map(|[x, y]| [w - x, h - y])
}

/// Small enough to be a single word, line or captcha. Tried on rendered and receipt lines
/// and captchas: requiring a wide aspect as well lost single characters, and preferring the
/// whole-image reading over detected boxes whenever its confidence is higher did not pay.
fn small(img: &RgbImage) -> bool {
    img.height() <= 256
}

/// Orders the lines and builds the page text. Quads stay in source pixels; on a turned page the
/// order is worked out in the turned frame, so the page reads top to bottom as a person would.
fn assemble(found: Vec<(Quad, String, f32)>, turned: bool, img: &RgbImage) -> Page {
    let frame: Vec<Quad> = found
        .iter()
        .map(|(q, _, _)| if turned { turn(q, img) } else { *q })
        .collect();
    let mut lines = Vec::with_capacity(found.len());
    let mut text_lines = Vec::new();
    for group in layout::lines(&frame) {
        let parts: Vec<&str> = group.iter().map(|&i| found[i].1.trim()).collect();
        text_lines.push(parts.join(" "));
        for i in group {
            let (quad, text, confidence) = found[i].clone();
            lines.push(Line {
                text,
                confidence,
                quad,
            });
        }
    }
    Page {
        text: text_lines.join("\n"),
        lines,
        timings: Timings::default(),
    }
}
