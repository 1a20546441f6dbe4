//! The process's Prometheus metrics: counted where things happen (requests in `http`, OCR and
//! charges in `workers`), sampled at scrape time (queue, workers, plan caches, RSS), and written
//! in the text exposition format for the metrics listener (`--metrics-listen`, `http::scrape`).
//!
//! One registry per process, reached through [`get`]: the metrics describe the process (its one
//! queue, its memory), and each counting site stays one line, with no handle threaded through
//! the data path. No label ever holds a key, a key id, a task id or a client's path: routes are
//! templates and every other label has a small fixed set of values.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the `ocrbox_ocr_seconds` buckets. A warm line or captcha reads in 70–90 ms
/// and its first read of a new shape (plan build) in about 1 s; a page in 1–3.5 s on x86_64 and
/// several times that on a Raspberry Pi; a document is pages times that, up to `--max-pages`
/// (50). Roughly doubling steps from 50 ms to 320 s keep each of those apart at 13 buckets.
const OCR_BUCKETS: [f64; 13] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0,
];

/// What one upload was, as the label `kind` of `ocrbox_ocr_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcrKind {
    /// One image (a one-page TIFF included).
    Image,
    /// A PDF or a multi-page TIFF: its time is all its pages'.
    Document,
}

impl OcrKind {
    fn label(self) -> &'static str {
        match self {
            OcrKind::Image => "image",
            OcrKind::Document => "document",
        }
    }
}

/// A request refused for want of capacity, as the labels of `ocrbox_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 402: the key's credits are spent or reserved.
    NoSolves,
    /// 503: every queue slot is taken.
    QueueFull,
    /// 503: the server is shutting down.
    ShuttingDown,
    /// 503: the shared ledger database does not answer (a fleet).
    LedgerUnavailable,
}

impl Refusal {
    const ALL: [Refusal; 4] = [
        Refusal::NoSolves,
        Refusal::QueueFull,
        Refusal::ShuttingDown,
        Refusal::LedgerUnavailable,
    ];

    fn labels(self) -> RefusalLabels {
        let (status, reason) = match self {
            Refusal::NoSolves => (402, "no_solves"),
            Refusal::QueueFull => (503, "queue_full"),
            Refusal::ShuttingDown => (503, "shutting_down"),
            Refusal::LedgerUnavailable => (503, "ledger_unavailable"),
        };
        RefusalLabels { status, reason }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    status: u16,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: &'static str,
}

/// Which text format a scrape gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4: what `curl` and most tools read.
    Prometheus,
    /// OpenMetrics 1.0 text, which Prometheus asks for first in its `Accept` header.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a scrape in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// What a scrape reads from the running parts, handed in by the scraper (this module knows no
/// queue and no engine).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampled {
    /// Jobs waiting for a worker.
    pub queue_depth: usize,
    /// Queue slots (`--queue`).
    pub queue_capacity: usize,
    /// Worker threads alive.
    pub workers: usize,
    /// Bytes of cached plans of the detector, the classifier and the recogniser.
    pub plan_cache_bytes: [usize; 3],
    /// Items of images' work done on cores lent by idle workers, ever.
    pub done_on_loan: u64,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
    ocr_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    credits_charged: Counter,
    in_flight: Gauge,
    queue_depth: Gauge,
    queue_capacity: Gauge,
    workers: Gauge,
    plan_cache_bytes: Family<ModelLabels, Gauge>,
    resident_memory: Gauge,
    /// Follows [`Sampled::done_on_loan`]; the lock makes concurrent scrapes add each step once.
    done_on_loan: std::sync::Mutex<Counter>,
}

/// The process's metrics, made on first use.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

fn ocr_histogram() -> Histogram {
    Histogram::new(OCR_BUCKETS)
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            refusals: Family::default(),
            ocr_seconds: Family::new_with_constructor(ocr_histogram),
            credits_charged: Counter::default(),
            in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            queue_capacity: Gauge::default(),
            workers: Gauge::default(),
            plan_cache_bytes: Family::default(),
            done_on_loan: Default::default(),
            resident_memory: Gauge::default(),
        };
        // Series that exist from the start read 0 rather than being absent, so a rate or an
        // alert on them works before the first event.
        for r in Refusal::ALL {
            let _ = m.refusals.get_or_create(&r.labels());
        }
        for k in [OcrKind::Image, OcrKind::Document] {
            let _ = m.ocr_seconds.get_or_create(&KindLabels { kind: k.label() });
        }
        m.register()
    }

    /// Names follow Prometheus' conventions: a `ocrbox_` prefix, the unit in the name, `_total`
    /// on counters (added by the encoder). RSS keeps the standard `process_` name that
    /// dashboards already chart.
    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "ocrbox_build",
            "Version of the running ocrbox",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        r.register(
            "ocrbox_http_requests",
            "API requests answered, by route template and HTTP status",
            self.requests.clone(),
        );
        r.register(
            "ocrbox_refusals",
            "API requests refused for want of credits (402) or capacity (503), by reason",
            self.refusals.clone(),
        );
        r.register_with_unit(
            "ocrbox_ocr",
            "Time a worker spent reading one upload (the result's `time`), by kind",
            Unit::Seconds,
            self.ocr_seconds.clone(),
        );
        r.register(
            "ocrbox_credits_charged",
            "Credits deducted for successful reads (one per page)",
            self.credits_charged.clone(),
        );
        r.register(
            "ocrbox_tasks_in_flight",
            "Uploads being read by a worker now",
            self.in_flight.clone(),
        );
        r.register(
            "ocrbox_queue_depth",
            "Uploads waiting for a worker",
            self.queue_depth.clone(),
        );
        r.register(
            "ocrbox_queue_capacity",
            "Queue slots (--queue); a full queue answers 503",
            self.queue_capacity.clone(),
        );
        r.register(
            "ocrbox_workers",
            "Inference threads alive",
            self.workers.clone(),
        );
        r.register_with_unit(
            "ocrbox_plan_cache",
            "Memory taken by cached model plans, as the plan budgets count it, by model",
            Unit::Bytes,
            self.plan_cache_bytes.clone(),
        );
        r.register(
            "ocrbox_lent_core_items",
            "Pieces of an image's work (line crops, orientation checks, line readings) done on cores lent by idle workers",
            self.done_on_loan.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident set size of the process (VmRSS)",
            Unit::Bytes,
            self.resident_memory.clone(),
        );
        self
    }

    /// Counts one answered API request. `route` is a template from a fixed set.
    pub fn request(&self, route: &'static str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    /// Counts one refused request.
    pub fn refused(&self, why: Refusal) {
        self.refusals.get_or_create(&why.labels()).inc();
    }

    /// Records the time one upload's reading took.
    pub fn ocr(&self, kind: OcrKind, took: Duration) {
        self.ocr_seconds
            .get_or_create(&KindLabels { kind: kind.label() })
            .observe(took.as_secs_f64());
    }

    /// Counts credits deducted by a successful read.
    pub fn charged(&self, credits: u64) {
        self.credits_charged.inc_by(credits);
    }

    /// Marks a task as being read until the guard is dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// The exposition in `format`, after reading the sampled gauges and the RSS. Reads
    /// `/proc`: call it off the async runtime.
    pub fn encode(&self, sampled: &Sampled, format: Format) -> String {
        let gauge = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        self.queue_depth.set(gauge(sampled.queue_depth));
        self.queue_capacity.set(gauge(sampled.queue_capacity));
        self.workers.set(gauge(sampled.workers));
        for (model, bytes) in ["det", "cls", "rec"]
            .into_iter()
            .zip(sampled.plan_cache_bytes)
        {
            self.plan_cache_bytes
                .get_or_create(&ModelLabels { model })
                .set(gauge(bytes));
        }
        {
            let counter = self.done_on_loan.lock().unwrap_or_else(|p| p.into_inner());
            counter.inc_by(sampled.done_on_loan.saturating_sub(counter.get()));
        }
        if let Some(rss) = resident_bytes() {
            self.resident_memory.set(gauge(rss));
        }
        let mut text = String::with_capacity(8 << 10);
        // Writing into a String cannot fail.
        let _ = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &self.registry)
            }
        };
        text
    }
}

/// Holds one `ocrbox_tasks_in_flight` while alive.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The resident set size from `/proc/self/status` (Linux; `None` elsewhere). `VmRSS` is in
/// kB, so no page size is needed.
fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<usize> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: usize = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc_status() {
        let status = "Name:\tocrbox\nVmPeak:\t  200 kB\nVmRSS:\t  109876 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(109_876 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        #[cfg(target_os = "linux")]
        assert!(resident_bytes().unwrap() > 0);
    }

    #[test]
    fn exposition_has_every_family_in_both_formats() {
        let m = Metrics::new();
        m.request("/api/ocr/solve", 200);
        m.refused(Refusal::NoSolves);
        m.ocr(OcrKind::Image, Duration::from_millis(80));
        m.charged(2);
        let busy = m.in_flight();
        let sampled = Sampled {
            queue_depth: 3,
            queue_capacity: 64,
            workers: 2,
            plan_cache_bytes: [10, 20, 30],
            done_on_loan: 7,
        };
        let text = m.encode(&sampled, Format::Prometheus);
        for line in [
            "# TYPE ocrbox_http_requests_total counter",
            "ocrbox_http_requests_total{route=\"/api/ocr/solve\",status=\"200\"} 1",
            "ocrbox_refusals_total{status=\"402\",reason=\"no_solves\"} 1",
            "ocrbox_refusals_total{status=\"503\",reason=\"queue_full\"} 0",
            "# TYPE ocrbox_ocr_seconds histogram",
            "ocrbox_ocr_seconds_bucket{kind=\"image\",le=\"0.1\"} 1",
            "ocrbox_ocr_seconds_count{kind=\"document\"} 0",
            "ocrbox_credits_charged_total 2",
            "ocrbox_tasks_in_flight 1",
            "ocrbox_queue_depth 3",
            "ocrbox_queue_capacity 64",
            "ocrbox_workers 2",
            "ocrbox_plan_cache_bytes{model=\"rec\"} 30",
            "ocrbox_lent_core_items_total 7",
            "# TYPE process_resident_memory_bytes gauge",
            "ocrbox_build_info{version=\"",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        drop(busy);
        // A second scrape of the same sample adds nothing.
        let open = m.encode(&sampled, Format::OpenMetrics);
        assert!(open.contains("ocrbox_lent_core_items_total 7\n"), "{open}");
        assert!(open.contains("ocrbox_tasks_in_flight 0\n"), "{open}");
        assert!(open.contains("# UNIT ocrbox_ocr_seconds seconds"), "{open}");
        assert!(open.ends_with("# EOF\n"), "{open}");
    }
}
