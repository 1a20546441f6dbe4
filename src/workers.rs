//! A fixed pool of inference threads behind a bounded queue.
//!
//! Inference is CPU-bound and takes up to a second per image, so it never runs on the async
//! runtime: handlers hand a [`Job`] to [`Pool::submit`], which fails at once when the queue is
//! full (the API answers 503) instead of letting memory grow with the backlog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use uuid::Uuid;

use crate::ledger::{self, LedgerError, Reservation};
use crate::metrics::{self, OcrKind};
use crate::ocr::decode::{sniff, Kind};
use crate::ocr::hints::Hints;
use crate::ocr::{document_text, Engine, Limits, OcrError, Page, Spare};
use crate::tasks::{FailReason, Internal, TaskState, TaskStore};

/// One accepted upload waiting for a worker; its task id is its reservation's.
pub struct Job {
    pub image: Bytes,
    /// When the task expires: a job not started by then is dropped uncharged.
    pub deadline: Instant,
    /// The credits held for this task, one per page; charged only if every page is read.
    pub reservation: Reservation,
    /// The client's decoding hints (checked at submit).
    pub hints: Arc<Hints>,
}

/// Why a job could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("queue full")]
    Full(Box<Job>),
    #[error("shutting down")]
    Closed(Box<Job>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.reservation.task())
            .field("bytes", &self.image.len())
            .finish()
    }
}

/// The worker threads and the sending end of their queue.
pub struct Pool {
    sender: Mutex<Option<SyncSender<Job>>>,
    /// Jobs queued and not yet taken by a worker (the channel does not expose its length).
    queued: Arc<AtomicUsize>,
    capacity: usize,
    stopping: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    engine: Arc<Engine>,
}

impl Pool {
    /// Starts `workers` threads sharing one queue of `queue` slots. A worker on a job counts as
    /// busy in `spare`; the engine borrows the cores left free.
    pub fn start(
        workers: usize,
        queue: usize,
        engine: Arc<Engine>,
        tasks: Arc<TaskStore>,
        limits: Limits,
        spare: Arc<Spare>,
    ) -> Pool {
        // `sync_channel(0)` would be a rendezvous channel that rejects every try_send while
        // workers are busy; keep at least one slot.
        let capacity = queue.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(capacity);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let threads = (0..workers.max(1))
            .map(|i| {
                let rx = Arc::clone(&rx);
                let engine = Arc::clone(&engine);
                let tasks = Arc::clone(&tasks);
                let stopping = Arc::clone(&stopping);
                let queued = Arc::clone(&queued);
                let spare = Arc::clone(&spare);
                let worker =
                    move || worker(&rx, &queued, &engine, &tasks, &limits, &stopping, &spare);
                std::thread::Builder::new()
                    .name(format!("ocr-worker-{i}"))
                    .spawn(worker)
                    .expect("spawn worker thread")
            })
            .collect();
        Pool {
            sender: Mutex::new(Some(tx)),
            queued,
            capacity,
            stopping,
            threads: Mutex::new(threads),
            engine,
        }
    }

    /// The engine the workers run (for checking a client's hints at submit).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Queues a job without blocking.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = sender.as_ref() else {
            return Err(SubmitError::Closed(Box::new(job)));
        };
        // Count first: a worker may take the job (and decrement) before try_send returns.
        self.queued.fetch_add(1, Ordering::SeqCst);
        tx.try_send(job).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            match e {
                TrySendError::Full(job) => SubmitError::Full(Box::new(job)),
                TrySendError::Disconnected(job) => SubmitError::Closed(Box::new(job)),
            }
        })
    }

    /// True when the queue is (about to be) full. A hint for refusing an upload before reading
    /// it; [`Pool::submit`] remains the authority.
    pub fn is_full(&self) -> bool {
        self.queued.load(Ordering::SeqCst) >= self.capacity
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Queue slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Worker threads `(alive, started)`; `(0, 0)` once shut down. Fewer alive than started
    /// means a thread died (a bug: engine panics are caught).
    pub fn workers_alive(&self) -> (usize, usize) {
        let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        let alive = threads.iter().filter(|t| !t.is_finished()).count();
        (alive, threads.len())
    }

    /// True while the queue takes jobs and every worker thread is alive (the health check).
    pub fn is_running(&self) -> bool {
        let open = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let (alive, started) = self.workers_alive();
        open && started > 0 && alive == started
    }

    /// Stops taking jobs, lets running inferences finish, drops queued jobs uncharged, and waits
    /// for the threads.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn worker(
    rx: &Mutex<Receiver<Job>>,
    queued: &AtomicUsize,
    engine: &Engine,
    tasks: &TaskStore,
    limits: &Limits,
    stopping: &AtomicBool,
    spare: &Spare,
) {
    loop {
        // Hold the lock only while waiting for the next job, never during inference.
        let job = match rx.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return, // sender dropped: shutting down and the queue is empty
        };
        queued.fetch_sub(1, Ordering::SeqCst);
        if stopping.load(Ordering::SeqCst) {
            tracing::debug!(task = %job.reservation.task(), "dropped at shutdown, not charged");
            continue;
        }
        if Instant::now() >= job.deadline {
            tracing::debug!(task = %job.reservation.task(), "expired in queue, not charged");
            continue;
        }
        // Busy from here: a core lent to another image is called back.
        let _busy = spare.busy();
        run(job, engine, tasks, limits);
    }
}

/// Reads one job's image or document and records the outcome: infer → settle → finish.
fn run(job: Job, engine: &Engine, tasks: &TaskStore, limits: &Limits) {
    let id = job.reservation.task();
    let Job {
        image,
        reservation,
        hints,
        deadline,
    } = job;
    let started = Instant::now();
    let busy = metrics::get().in_flight();
    let kind = kind_of(&image, reservation.credits());
    // A panic in the engine must cost one task, not a worker thread: catch it as a model error.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        engine.recognize_bytes(&image, limits, &hints)
    }))
    .unwrap_or_else(|_| Err(OcrError::Model("panic during OCR".into())));
    // The image is not needed past inference; free it before the (possibly slow) commit.
    drop(image);
    metrics::get().ocr(kind, started.elapsed());
    let seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    if !tasks.begin_finish(&id) {
        tracing::debug!(task = %id, "finished after expiry, not charged");
        return;
    }
    let state = settle(outcome, reservation, &id, seconds, deadline);
    // Out of flight before the result can be read.
    drop(busy);
    tasks.finish(&id, state);
}

/// What an upload is, as the metrics count it: a PDF, or an upload of several pages, is a
/// document.
fn kind_of(upload: &[u8], pages: u64) -> OcrKind {
    if pages > 1 || matches!(sniff(upload), Ok(Kind::Pdf)) {
        OcrKind::Document
    } else {
        OcrKind::Image
    }
}

/// Charges the credits (one per page) for a successful reading, recording its result in the
/// same transaction; otherwise ends the reservation uncharged with the reason (a document with
/// one unreadable page costs nothing). Causes that are ours are logged here; the client's
/// wording is `http::error`'s.
fn settle(
    outcome: Result<Vec<Page>, OcrError>,
    mut reservation: Reservation,
    id: &Uuid,
    seconds: f64,
    deadline: Instant,
) -> TaskState {
    let reason = match outcome {
        Err(OcrError::Decode(e)) => FailReason::Image(e),
        Err(OcrError::Model(e)) => {
            tracing::error!(task = %id, error = %e, "OCR engine failed");
            FailReason::Internal(Internal::Engine)
        }
        // The route reserved one credit per page it counted, with the same `Document::open`;
        // a disagreement would be our bug, and must not charge a wrong count.
        Ok(pages) if pages.len() as u64 != reservation.credits() => {
            tracing::error!(task = %id, read = pages.len(), reserved = reservation.credits(), "page count changed");
            FailReason::Internal(Internal::Engine)
        }
        Ok(pages) => {
            let done = TaskState::Done {
                text: document_text(&pages),
                pages: Arc::new(pages),
                seconds,
            };
            let credits = reservation.credits();
            match until_deadline(deadline, || reservation.charge(&|| done.record())) {
                Ok(_) => {
                    metrics::get().charged(credits);
                    return done;
                }
                // The text is withheld: it was not paid for.
                Err(LedgerError::NoSolves) => FailReason::NoSolves,
                Err(LedgerError::Revoked) => FailReason::Revoked,
                Err(LedgerError::TaskGone) => {
                    tracing::debug!(task = %id, "ended elsewhere meanwhile, not charged");
                    FailReason::Lost
                }
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "could not record the solve");
                    FailReason::Internal(Internal::Ledger)
                }
            }
        }
    };
    let failed = TaskState::Failed { reason, seconds };
    if let Err(e) = until_deadline(deadline, || reservation.fail(&|| failed.record())) {
        // The hold ends with the task's lifetime; nobody can read the task past it anyway.
        tracing::warn!(task = %id, error = %e, "could not record a failed task");
    }
    failed
}

/// Runs `op` again while the ledger is unavailable (a shared database restarting) and the task
/// has not expired, so a result read during a database outage is charged and shown once the
/// database is back, rather than lost. Retrying is safe: a charge or a failure applies only to
/// a task still in process, so one that went through before an error is not applied twice.
fn until_deadline<T>(
    deadline: Instant,
    mut op: impl FnMut() -> Result<T, LedgerError>,
) -> Result<T, LedgerError> {
    let mut pause = ledger::RETRY_FIRST;
    loop {
        match op() {
            Err(LedgerError::Unavailable(why)) if Instant::now() + pause < deadline => {
                tracing::debug!(%why, "ledger unavailable; retrying");
                std::thread::sleep(pause);
                pause = ledger::next_pause(pause);
            }
            other => return other,
        }
    }
}
