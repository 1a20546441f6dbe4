//! Model loading and the per-shape plan cache.
//!
//! tract cannot analyse these exports with symbolic height/width, so every distinct input shape
//! needs its own optimised plan (~100 ms to build). Callers pad inputs to a few bucket shapes;
//! plans are built lazily on first use, kept in a small LRU, and shared by all threads
//! (`SimplePlan::run` takes `&self`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use super::OcrError;

/// The model files, embedded in the binary at build time.
pub struct ModelFiles {
    pub det: Cow<'static, [u8]>,
    pub cls: Cow<'static, [u8]>,
    pub rec: Cow<'static, [u8]>,
    pub dict: Cow<'static, str>,
}

impl ModelFiles {
    /// The files compiled into this binary.
    pub fn embedded() -> ModelFiles {
        ModelFiles {
            det: Cow::Borrowed(include_bytes!("../../models/det.onnx")),
            cls: Cow::Borrowed(include_bytes!("../../models/cls.onnx")),
            rec: Cow::Borrowed(include_bytes!("../../models/rec.onnx")),
            dict: Cow::Borrowed(include_str!("../../models/ppocrv5_dict.txt")),
        }
    }

    /// Files from a directory holding `det.onnx`, `cls.onnx`, `rec.onnx`, `ppocrv5_dict.txt`.
    pub fn from_dir(dir: &Path) -> Result<ModelFiles, OcrError> {
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .map_err(|e| OcrError::Model(format!("{}: {e}", dir.join(name).display())))
        };
        let dict = String::from_utf8(read("ppocrv5_dict.txt")?)
            .map_err(|_| OcrError::Model("ppocrv5_dict.txt is not UTF-8".into()))?;
        Ok(ModelFiles {
            det: Cow::Owned(read("det.onnx")?),
            cls: Cow::Owned(read("cls.onnx")?),
            rec: Cow::Owned(read("rec.onnx")?),
            dict: Cow::Owned(dict),
        })
    }
}

type Plan = Arc<TypedRunnableModel>;

/// One ONNX model and its optimised plans, one per input shape.
pub struct Model {
    name: &'static str,
    graph: InferenceModel,
    cache: Mutex<Lru>,
}

struct Lru {
    plans: HashMap<[usize; 4], (Plan, u64)>,
    tick: u64,
    cap: usize,
}

impl Model {
    /// Parses the model once; plans are built on demand. At most `cap` plans are kept.
    pub fn load(name: &'static str, bytes: &[u8], cap: usize) -> Result<Model, OcrError> {
        let graph = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .map_err(|e| OcrError::Model(format!("{name}: {e}")))?;
        Ok(Model {
            name,
            graph,
            cache: Mutex::new(Lru {
                plans: HashMap::new(),
                tick: 0,
                cap: cap.max(1),
            }),
        })
    }

    fn plan(&self, shape: [usize; 4]) -> Result<Plan, OcrError> {
        {
            let mut lru = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            lru.tick += 1;
            let tick = lru.tick;
            if let Some((plan, used)) = lru.plans.get_mut(&shape) {
                *used = tick;
                return Ok(plan.clone());
            }
        }
        // Built outside the lock: other shapes stay usable meanwhile. Two threads may race to
        // build the same shape once; the loser's plan is simply dropped.
        let plan = self
            .graph
            .clone()
            .with_input_fact(0, f32::fact(shape).into())
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| OcrError::Model(format!("{} {shape:?}: {e}", self.name)))?;
        let mut lru = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        lru.tick += 1;
        let tick = lru.tick;
        if lru.plans.len() >= lru.cap && !lru.plans.contains_key(&shape) {
            if let Some(oldest) = lru
                .plans
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| *k)
            {
                lru.plans.remove(&oldest);
            }
        }
        lru.plans.insert(shape, (plan.clone(), tick));
        Ok(plan)
    }

    /// Runs the model on an NCHW tensor and returns its first output.
    pub fn run(&self, shape: [usize; 4], data: Vec<f32>) -> Result<Tensor, OcrError> {
        let plan = self.plan(shape)?;
        let input = Tensor::from_shape(&shape, &data)
            .map_err(|e| OcrError::Model(format!("{}: {e}", self.name)))?;
        let mut out = plan
            .run(tvec!(input.into()))
            .map_err(|e| OcrError::Model(format!("{}: {e}", self.name)))?;
        Ok(out.remove(0).into_tensor())
    }

    /// Number of plans currently cached.
    pub fn cached_plans(&self) -> usize {
        self.cache.lock().map(|l| l.plans.len()).unwrap_or(0)
    }
}

/// A model output as a flat slice (outputs are contiguous f32 tensors).
pub fn as_f32<'t>(t: &'t Tensor, what: &str) -> Result<&'t [f32], OcrError> {
    t.to_plain_array_view::<f32>()
        .ok()
        .and_then(|v| v.to_slice())
        .ok_or_else(|| OcrError::Model(format!("{what} output is not a contiguous f32 tensor")))
}
