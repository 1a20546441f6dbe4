//! Wires the stages: decode → detect → crop → orient → recognise → filter → lone marks → layout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image::RgbImage;
use tract_linalg::multithread::{multithread_tract_scope, Executor};

use super::classify::{self, upside_down};
use super::crop::crop_quad;
use super::ctc::{mostly_latin, Charset, Reading};
use super::detect::{self, detect, DetParams};
use super::document::{Decoded, Document};
use super::geometry::Quad;
use super::hints::{HintError, HintSpec, Hints};
use super::models::{Detector, Model, ModelFiles, Shapes};
use super::preprocess::rotate180;
use super::recognize::{self, recognize, Read};
use super::spare::{Loan, Spare};
use super::{layout, marks, orient, Limits, Line, OcrError, Page, Timings};

/// Lines whose recognition confidence is below this are dropped. The reference drops below
/// 0.5; PP-OCRv6's recogniser is surer of what it reads, and what it reads at 0.5–0.6 on the
/// dev pages was half-cut text at a scan's edge (`CUONOCADIF DIZ OAVE`) and a handwritten note
/// (`perr`, not in the receipts' labels).
/// `scripts/eval-all.sh`, receipt pages CER by threshold: 0.5 5.09 %, 0.55 4.90, 0.6 4.85,
/// 0.65 4.82, 0.7 4.91; every other dev set (lines, captchas, pages) the same from 0.5 to 0.7.
const DROP_SCORE: f32 = 0.6;
/// The whole-image reading needs less: there is no other candidate to prefer.
const WHOLE_LINE_SCORE: f32 = 0.3;

/// What a mark standing apart from the text may read as: the separators of key–value
/// columns. (Read freely, such gaps also gave dashes, dots and commas, mostly rules and specks.)
const LONE_MARKS: &str = ":;=*#";

/// Bytes of plans each model may keep: the packed weights they hold, once however many plans
/// share them, and [`models::shape_bytes`] per plan. The least recently used shapes are rebuilt
/// when needed again (detector ~0.25–0.3 s, recogniser ~0.05–0.09 s). With weights shared, all
/// 12 recogniser widths count 38 MB (21 MB of them the first plan's) and a detector plan of a
/// new shape class ~10 MB (tract picks kernels, so packings, by shape). Mixed soak, 2 workers,
/// 2 min (`scripts/soak.sh -m 2 -w 2`), det/rec MiB: 40/40 peak 380 MiB at 3.21 images/s
/// (9 recogniser and 6 detector plans built); 32/32 374 MiB at 2.66 (245 and 50 built): the
/// peak is not the plans'. Before plans shared weights: 377 MiB at 2.41 images/s.
///
/// [`models::shape_bytes`]: super::models::shape_bytes
const DET_PLAN_BYTES: usize = 40 << 20;
const CLS_PLAN_BYTES: usize = 8 << 20;
const REC_PLAN_BYTES: usize = 40 << 20;

/// The OCR engine. Share one `Arc<Engine>` across worker threads: the models and their plan
/// caches are read-only apart from the cache itself, which is behind a lock.
pub struct Engine {
    det: Model,
    cls: Model,
    rec: Model,
    charset: Charset,
    det_params: DetParams,
    /// One detection at a time across the workers: a 960² detection holds tens of MiB of
    /// activations, and detection is ~15 % of a page's time, so two at once cost memory
    /// (the soak's peak) for little throughput.
    det_gate: Mutex<()>,
    threads: usize,
    /// Idle workers' cores this engine's images may borrow (the service's pool).
    spare: Option<Arc<Spare>>,
    /// tract's thread pools for one model run on several cores, by size, made on first use.
    pools: Mutex<HashMap<usize, Executor>>,
    /// How a lone mark is decoded: only [`LONE_MARKS`] may be read.
    mark_hints: Hints,
}

impl Engine {
    /// Loads the models embedded in the binary, with the given detector.
    pub fn new(detector: Detector) -> Result<Engine, OcrError> {
        Engine::from_files(&ModelFiles::embedded(detector))
    }

    /// Loads models from the given files (e.g. `ModelFiles::from_dir`).
    pub fn from_files(files: &ModelFiles) -> Result<Engine, OcrError> {
        let charset = Charset::new(&files.dict);
        let marks = HintSpec {
            charset: Some(LONE_MARKS.into()),
            ..HintSpec::default()
        };
        let mark_hints = Hints::compile(&marks, &charset)
            .map_err(|e| OcrError::Model(format!("the dictionary lacks the marks: {e}")))?;
        let engine = Engine {
            det: Model::load("det", files.det.clone(), Shapes::Each, DET_PLAN_BYTES)?,
            cls: Model::load("cls", files.cls.clone(), Shapes::Each, CLS_PLAN_BYTES)?,
            rec: Model::load("rec", files.rec.clone(), recognize::SHAPES, REC_PLAN_BYTES)?,
            charset,
            det_params: DetParams::of(files.detector),
            det_gate: Mutex::new(()),
            threads: 1,
            spare: None,
            pools: Mutex::new(HashMap::new()),
            mark_hints,
        };
        files.release();
        Ok(engine)
    }

    /// Makes now what the first image would otherwise wait for: the recogniser's width-free
    /// graph and the classifier's one plan (the service calls this beside its start).
    pub fn warm_up(&self) {
        self.rec.prepare();
        self.cls.warm(classify::SHAPE);
    }

    /// Lets one page's lines be classified and recognised, and its detection run, on up to `n`
    /// threads. The service keeps 1 per worker and borrows idle cores instead
    /// ([`Engine::with_spare`]); the CLI uses all cores.
    pub fn with_threads(mut self, n: usize) -> Engine {
        self.threads = n.max(1);
        self
    }

    /// Lets one image's lines also use the cores of idle workers, as `spare` counts them (the
    /// service: a lone page on an idle box is read on all its cores, see [`Spare`]).
    pub fn with_spare(mut self, spare: Arc<Spare>) -> Engine {
        self.spare = Some(spare);
        self
    }

    /// Reads every page of `bytes`: an image, or a PDF or multi-page TIFF (within `limits`),
    /// decoding one page at a time so a long document never holds all its pages. Line boxes
    /// are in pixels of each page as uploaded.
    pub fn recognize_bytes(
        &self,
        bytes: &[u8],
        limits: &Limits,
        hints: &Hints,
    ) -> Result<Vec<Page>, OcrError> {
        let t = Instant::now();
        let doc = Document::open(bytes, limits)?;
        let mut open_time = t.elapsed();
        let mut pages = Vec::with_capacity(doc.pages());
        for i in 0..doc.pages() {
            let t = Instant::now();
            let Decoded {
                image,
                width,
                height,
            } = doc.page(i)?;
            let decode_time = t.elapsed() + std::mem::take(&mut open_time);
            let mut page = self.recognize(&image, hints)?;
            page.timings.decode = decode_time;
            page.scale_to(width, height);
            pages.push(page);
        }
        Ok(pages)
    }

    /// Checks a client's hints against the recogniser's dictionary.
    pub fn hints(&self, spec: &HintSpec) -> Result<Hints, HintError> {
        Hints::compile(spec, &self.charset)
    }

    /// Reads the text of an RGB image, obeying `hints`: upright, upside down, or turned a
    /// quarter either way (a page fed sideways).
    pub fn recognize(&self, img: &RgbImage, hints: &Hints) -> Result<Page, OcrError> {
        if hints.single_line {
            return self.single_line(img, hints);
        }
        let mut timings = Timings::default();
        let t = Instant::now();
        let quads = std::thread::scope(|s| {
            // The first image: the recogniser's width-free graph (~0.4 s) and the classifier's
            // plan (~0.2 s) are made beside detection rather than after it.
            if self.rec.unprepared() {
                s.spawn(|| self.warm_up());
            }
            self.detect_page(img)
        })?;
        // A page whose text runs up or down is turned a quarter counter-clockwise and its text
        // found again: the detector, trained on upright text, finds sideways lines less well
        // (receipt pages turned either way: 7.6 % CER read from their first boxes, against
        // 4.8 % upright). Whether it should have gone the other way round is the upside-down
        // vote's to say, as for any page.
        let source = img;
        let quarter = orient::sideways(&quads).then(|| image::imageops::rotate270(source));
        let (img, quads) = match &quarter {
            Some(turned) => (turned, self.detect_page(turned)?),
            None => (source, quads),
        };
        timings.detect = t.elapsed();

        let t = Instant::now();
        let mut crops: Vec<RgbImage> = self.par_map(&quads, |q| Ok(crop_quad(img, q)))?;
        let widths: Vec<u32> = crops.iter().map(|c| c.width()).collect();
        let votes: Vec<(u32, f32)> = self.par_map(&orient::voters(&widths), |&i| {
            Ok((widths[i], upside_down(&self.cls, &crops[i])?))
        })?;
        let decision = orient::decide(&votes, crops.len());
        timings.classify = t.elapsed();
        // An upside-down page is turned over and its text found again, for the same reason
        // (receipt pages upside down: 5.25 % CER read from their first boxes turned, against
        // 4.84 % upright); a lone line is only turned over.
        let t = Instant::now();
        let half = decision.turned_page.then(|| rotate180(img));
        // A lone line the classifier turns over; a turned page's lines are found upright.
        let flip_lines = decision.flip_all && half.is_none();
        let (img, quads) = match &half {
            Some(turned) => {
                let quads = self.detect_page(turned)?;
                crops = self.par_map(&quads, |q| Ok(crop_quad(turned, q)))?;
                (turned, quads)
            }
            None => {
                if flip_lines {
                    for crop in crops.iter_mut() {
                        *crop = rotate180(crop);
                    }
                }
                (img, quads)
            }
        };
        timings.detect += t.elapsed();

        let t = Instant::now();
        let reads = self.read_lines(&crops, hints)?;
        // A page that reads as Latin script has no CJK either: its lines (a lone `二` for an
        // `=` on a receipt) take their reading with the Latin mask.
        let (foreign, letters) = reads.iter().fold((0, 0), |(f, l), r| {
            let (rf, rl) = r.reading.script_counts();
            (f + rf, l + rl)
        });
        let latin_page = foreign > 0 && mostly_latin(foreign, letters);
        let mut readings: Vec<Reading> = reads
            .into_iter()
            .map(|r| match r.as_latin {
                Some(latin) if latin_page => latin,
                _ => r.reading,
            })
            .collect();
        if decision.read_both_ways {
            let reading = std::mem::replace(&mut readings[0], Reading::empty());
            readings[0] = self.better_reading(&crops[0], reading, hints)?;
        }
        let mut found: Vec<Line> = quads
            .iter()
            .zip(readings)
            .filter(|(_, r)| r.confidence >= DROP_SCORE && !r.text.trim().is_empty())
            .map(|(quad, r)| Line {
                text: r.text,
                confidence: r.confidence,
                quad: *quad,
            })
            .collect();
        let marks = self.lone_marks(img, &found, flip_lines, hints)?;
        found.extend(marks);
        if found.is_empty() && small(img) {
            found.extend(self.whole_line(img, hints, WHOLE_LINE_SCORE)?);
        }
        timings.recognize = t.elapsed();

        let mut page = assemble(found, img);
        let turns = usize::from(quarter.is_some()) + 2 * usize::from(half.is_some());
        if turns > 0 {
            let (w, h) = source.dimensions();
            for line in &mut page.lines {
                line.quad = orient::to_source(&line.quad, turns, w, h);
            }
            (page.width, page.height) = (w, h);
        }
        page.timings = timings;
        Ok(page)
    }

    /// The text boxes of `img` (one detection at a time, on the cores this image may use).
    fn detect_page(&self, img: &RgbImage) -> Result<Vec<Quad>, OcrError> {
        let _one = self.det_gate.lock().unwrap_or_else(|p| p.into_inner());
        self.on_cores(|| detect(&self.det, img, &self.det_params))
    }

    /// Marks that stand apart beside the `found` lines, which detection misses ([`marks`]):
    /// read like lines (turned over with the page) but as one of [`LONE_MARKS`], and kept
    /// when one or two are read with the confidence a line needs. Not under a client's
    /// hints, which say what the text holds.
    fn lone_marks(
        &self,
        img: &RgbImage,
        found: &[Line],
        flip: bool,
        hints: &Hints,
    ) -> Result<Vec<Line>, OcrError> {
        if !hints.is_none() {
            return Ok(Vec::new());
        }
        let quads: Vec<Quad> = found.iter().map(|l| l.quad).collect();
        let boxes = marks::beside(img, &quads);
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let crops: Vec<RgbImage> = boxes
            .iter()
            .map(|q| {
                let c = marks::crop(img, q);
                if flip {
                    rotate180(&c)
                } else {
                    c
                }
            })
            .collect();
        let reads = self.read_lines(&crops, &self.mark_hints)?;
        Ok(boxes
            .into_iter()
            .zip(reads)
            .filter_map(|(quad, r)| {
                let text = r.reading.text.trim();
                let mark = !text.is_empty() && text.chars().count() <= 2;
                (mark && r.reading.confidence >= DROP_SCORE).then(|| Line {
                    text: text.to_string(),
                    confidence: r.reading.confidence,
                    quad,
                })
            })
            .collect())
    }

    /// The whole image read as one line, as the client said it is (`single_line`): no
    /// detection, and the reading is kept however unsure.
    fn single_line(&self, img: &RgbImage, hints: &Hints) -> Result<Page, OcrError> {
        let t = Instant::now();
        let found = self.whole_line(img, hints, 0.0)?;
        let mut page = assemble(found.into_iter().collect(), img);
        page.timings.recognize = t.elapsed();
        Ok(page)
    }

    /// Recognises the whole image as one line: detection misses single characters, short wide
    /// images whose text touches the edges, and captcha-like images with noisy backgrounds.
    /// Kept when at least `min_score` confident.
    fn whole_line(
        &self,
        img: &RgbImage,
        hints: &Hints,
        min_score: f32,
    ) -> Result<Option<Line>, OcrError> {
        let mut best = recognize(&self.rec, &self.charset, img, hints)?.reading;
        if orient::doubtful(upside_down(&self.cls, img)?) {
            best = self.better_reading(img, best, hints)?;
        }
        if best.confidence < min_score || best.text.trim().is_empty() {
            return Ok(None);
        }
        let (w, h) = (img.width() as f32, img.height() as f32);
        Ok(Some(Line {
            text: best.text,
            confidence: best.confidence,
            quad: [
                [0.0, 0.0],
                [w - 1.0, 0.0],
                [w - 1.0, h - 1.0],
                [0.0, h - 1.0],
            ],
        }))
    }

    /// `reading` of `line`, or the reading of `line` turned over if that is more confident.
    fn better_reading(
        &self,
        line: &RgbImage,
        reading: Reading,
        hints: &Hints,
    ) -> Result<Reading, OcrError> {
        let turned = recognize(&self.rec, &self.charset, &rotate180(line), hints)?.reading;
        Ok(orient::better(reading, turned))
    }

    /// Recognises `crops`, in the order of their plan widths so that a page's lines need each
    /// recogniser plan once (the cache keeps few: `REC_PLAN_BYTES`), taken from both ends of
    /// that order in turn ([`both_ends`]); readings come back in the crops' order.
    fn read_lines(&self, crops: &[RgbImage], hints: &Hints) -> Result<Vec<Read>, OcrError> {
        let mut by_width: Vec<usize> = (0..crops.len()).collect();
        by_width.sort_by_key(|&i| recognize::bucket(&crops[i], hints));
        let order = both_ends(&by_width);
        let reads = self.par_map(&order, |&i| {
            recognize(&self.rec, &self.charset, &crops[i], hints)
        })?;
        let mut readings: Vec<Option<Read>> = (0..crops.len()).map(|_| None).collect();
        for (i, r) in order.into_iter().zip(reads) {
            readings[i] = Some(r);
        }
        Ok(readings.into_iter().flatten().collect())
    }

    /// Runs `f`, one model run, with tract's matrix products spread over `self.threads` cores
    /// plus those lent by idle workers, given back when it returns. For detection: a 960²
    /// detection runs 1.5× faster on 2 cores than on one (`cargo run --release --example
    /// threads -- models/det-small.onnx 960 960 2 64`: 776 → 492 ms; tiny 377 → 250 ms), where
    /// a page's lines are better spread one per core (the recogniser at 48×320 gains 1.08×).
    fn on_cores<R>(&self, f: impl FnOnce() -> R) -> R {
        // Held until the run returns.
        let loans = self.borrow(usize::MAX);
        let n = self.threads + loans.len();
        if n <= 1 {
            return f();
        }
        let pool = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(n)
            .or_insert_with(|| pool(n))
            .clone();
        multithread_tract_scope(pool, f)
    }

    /// Up to `n` cores lent by idle workers (none without [`Engine::with_spare`]).
    fn borrow(&self, n: usize) -> Vec<Loan<'_>> {
        self.spare
            .as_ref()
            .map_or_else(Vec::new, |spare| spare.borrow_up_to(n))
    }

    /// Maps `f` over `items` on up to `self.threads` threads plus the cores idle workers lend
    /// (each helper gives its core back, after the item in hand, once its lender has a job),
    /// keeping order.
    fn par_map<T: Sync, R: Send>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> Result<R, OcrError> + Sync,
    ) -> Result<Vec<R>, OcrError> {
        let own = self.threads.min(items.len());
        let mut loans: Vec<Option<Loan>> = self
            .borrow(items.len().saturating_sub(own))
            .into_iter()
            .map(Some)
            .collect();
        if own + loans.len() <= 1 {
            return items.iter().map(&f).collect();
        }
        loans.extend((0..own).map(|_| None));
        let next = AtomicUsize::new(0);
        let mut results: Vec<(usize, Result<R, OcrError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = loans
                .into_iter()
                .map(|mut loan| {
                    let (next, f) = (&next, &f);
                    s.spawn(move || {
                        let mut out = Vec::new();
                        loop {
                            if let Some(held) = loan.take() {
                                match held.renew() {
                                    Some(held) => loan = Some(held),
                                    None => break,
                                }
                            }
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(item) = items.get(i) else { break };
                            out.push((i, f(item)));
                            if let Some(held) = &loan {
                                held.count();
                            }
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

    /// Items of images' work done on lent cores so far (0 without [`Engine::with_spare`]).
    pub fn done_on_loan(&self) -> u64 {
        self.spare.as_ref().map_or(0, |s| s.done_on_loan())
    }

    /// Plans currently cached per model (det, cls, rec): for diagnostics and benchmarks.
    pub fn cached_plans(&self) -> [usize; 3] {
        [
            self.det.cached_plans(),
            self.cls.cached_plans(),
            self.rec.cached_plans(),
        ]
    }

    /// Bytes of the cached plans per model (det, cls, rec), as the plan budgets count them:
    /// for the metrics.
    pub fn cached_plan_bytes(&self) -> [usize; 3] {
        [
            self.det.cached_bytes(),
            self.cls.cached_bytes(),
            self.rec.cached_bytes(),
        ]
    }
}

/// `items` taken from the front and the back in turn (`[a, b, c, d, e]` → `[a, e, b, d, c]`).
/// Threads that take the next line of a page one after another then read lines of different
/// widths at the same time, so that a fresh engine builds each recogniser plan once: read in
/// plain width order, two threads started on the same new width together and both built its
/// plan (a receipt page read cold on 2 cores built 5 of its 7 widths twice, 50–90 ms each).
fn both_ends<T: Copy>(items: &[T]) -> Vec<T> {
    let (mut front, mut back) = (0, items.len());
    let mut out = Vec::with_capacity(items.len());
    while front < back {
        out.push(items[front]);
        front += 1;
        if front < back {
            back -= 1;
            out.push(items[back]);
        }
    }
    out
}

/// tract's executor on a pool of `n` threads, or on the calling thread alone if the pool cannot
/// be started (out of threads: `TasksMax` in the unit): slower, never a failed image.
fn pool(n: usize) -> Executor {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("ocr-model-{i}"))
        .build()
    {
        Ok(pool) => Executor::MultiThread(Arc::new(pool)),
        Err(e) => {
            tracing::warn!("no {n}-thread pool for detection, using one thread: {e}");
            Executor::SingleThread
        }
    }
}

/// Small enough to be a single word, line or captcha. Tried on rendered and receipt lines
/// and captchas: requiring a wide aspect as well lost single characters, and preferring the
/// whole-image reading over detected boxes whenever its confidence is higher did not pay.
fn small(img: &RgbImage) -> bool {
    img.height() <= 256
}

/// Orders the lines and builds the page text (the page is upright: see [`Engine::recognize`]).
fn assemble(found: Vec<Line>, img: &RgbImage) -> Page {
    let (w, h) = img.dimensions();
    let frame: Vec<Quad> = found.iter().map(|l| l.quad).collect();
    let mut lines = Vec::with_capacity(found.len());
    let mut text_lines = Vec::new();
    for group in layout::lines(&frame) {
        let parts: Vec<&str> = group.iter().map(|&i| found[i].text.trim()).collect();
        text_lines.push(parts.join(" "));
        lines.extend(group.iter().map(|&i| found[i].clone()));
    }
    Page {
        text: text_lines.join("\n"),
        lines,
        width: w,
        height: h,
        timings: Timings::default(),
    }
}

/// The tensors the pipeline feeds its models for a decoded page, built by the stages' own
/// `input()` functions without running any model: the detector's, the classifier's windows and
/// the recogniser's strips of the whole image upright and turned (what the engine reads when
/// detection finds nothing). Checks every tensor's length and values and returns its
/// `[n, c, h, w]`. Exists for the `decode` fuzz target (`fuzz/`), which feeds it every image
/// the decoder accepts, so fuzzing checks exactly the input path that runs.
#[doc(hidden)]
pub fn model_inputs(img: &RgbImage) -> Vec<[usize; 4]> {
    let mut shapes = Vec::new();
    let mut check = |shape: [usize; 4], data: &[f32]| {
        assert_eq!(data.len(), shape.iter().product::<usize>(), "tensor length");
        assert!(
            data.iter().all(|v| v.is_finite()),
            "non-finite tensor value"
        );
        shapes.push(shape);
    };
    let params = DetParams::of(Detector::default());
    let det = detect::input(img, &params);
    let [_, _, bh, bw] = det.shape;
    let limit = params.limit_side as usize;
    assert!(
        bw % 32 == 0 && bh % 32 == 0 && bw.max(bh) <= limit.div_ceil(32) * 32 + 32,
        "det size {bw}x{bh} over {limit}"
    );
    check(det.shape, &det.data);
    for data in classify::inputs(img) {
        check(classify::SHAPE, &data);
    }
    for line in [img.clone(), rotate180(img)] {
        let rec = recognize::input(&line, &Hints::none());
        check(rec.shape, &rec.data);
    }
    shapes
}

#[cfg(test)]
mod tests {
    use super::both_ends;

    #[test]
    fn lines_are_taken_from_both_ends_in_turn() {
        assert_eq!(both_ends(&[1, 2, 3, 4, 5]), [1, 5, 2, 4, 3]);
        assert_eq!(both_ends(&[1, 2, 3, 4]), [1, 4, 2, 3]);
        assert!(both_ends::<u8>(&[]).is_empty());
    }
}
