//! In-memory task store: what each submitted task has become, until it expires.
//!
//! On a single box tasks never touch disk. The uploaded image is *not* kept here: it travels
//! with the job through the worker queue and is dropped as soon as inference ends; this store
//! only holds the outcome. With a shared ledger (a fleet) the outcome is also kept in the
//! ledger as a [`TaskRecord`], and polls read it there, on whichever box they land; this store
//! then serves to wake the long-polls of the tasks this box runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use uuid::Uuid;

use crate::ledger::{KeyHash, TaskRecord};
use crate::ocr::{DecodeError, Page};

/// Where a task stands.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    /// Queued or being read.
    InProcess,
    /// A worker is recording the outcome (charging the credit). Shown as in process; the reaper
    /// leaves such a task alone so a charged result is never lost to expiry.
    Finishing,
    /// OCR succeeded: the text (pages joined by a form feed), each page's lines and size (for
    /// `details=1`), and the processing time in seconds.
    Done {
        text: String,
        pages: Arc<Vec<Page>>,
        seconds: f64,
    },
    /// The task failed and nothing was charged: why, and the processing time in seconds.
    Failed { reason: FailReason, seconds: f64 },
}

/// Why a task failed. Only `http::error` words these for the client, so each failure is worded
/// once and the spec's own strings exist once.
#[derive(Debug, Clone, PartialEq)]
pub enum FailReason {
    /// The upload is not a usable image.
    Image(DecodeError),
    /// The key's last credit went elsewhere (e.g. an administrator's debit) while the task ran.
    NoSolves,
    /// The key was revoked or deleted while the task ran.
    Revoked,
    /// Our fault; the cause is logged where it happened, never sent.
    Internal(Internal),
    /// The box reading the task stopped before it ended (seen through a shared ledger).
    Lost,
    /// A failure recorded in a shared ledger, as it was worded for the client then.
    Recorded(String),
}

/// Which part of ours failed a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Internal {
    /// The OCR engine returned an error or panicked.
    Engine,
    /// The charge could not be recorded in the ledger.
    Ledger,
}

/// A snapshot of one task, as the result endpoint needs it.
#[derive(Debug, Clone)]
pub struct TaskView {
    pub owner: KeyHash,
    pub state: TaskState,
    /// Wakes whoever waits for this task to end (long-poll; see [`TaskStore::finish`]): only
    /// for tasks run by this box.
    pub ended: Option<Arc<Notify>>,
}

/// A finished task's result as a shared ledger stores it (JSON).
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pages: Option<Arc<Vec<Page>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    seconds: f64,
}

impl TaskState {
    /// The outcome as a shared ledger keeps it (`Done` is charged; anything else is not). The
    /// failure's wording is the client's (`FailReason`'s `Display`, in `http::error`).
    pub fn record(&self) -> TaskRecord {
        let (ok, stored) = match self {
            TaskState::Done {
                text,
                pages,
                seconds,
            } => (
                true,
                Stored {
                    text: Some(text.clone()),
                    pages: Some(Arc::clone(pages)),
                    seconds: *seconds,
                    ..Stored::default()
                },
            ),
            TaskState::Failed { reason, seconds } => (
                false,
                Stored {
                    detail: Some(reason.to_string()),
                    seconds: *seconds,
                    ..Stored::default()
                },
            ),
            // Not an outcome; read back, an empty record is a lost task.
            TaskState::InProcess | TaskState::Finishing => (false, Stored::default()),
        };
        TaskRecord {
            ok,
            body: serde_json::to_string(&stored).unwrap_or_default(),
        }
    }

    /// The outcome read back from a shared ledger; a failure without a body is a task whose
    /// box stopped ([`FailReason::Lost`]).
    pub fn from_record(record: TaskRecord) -> TaskState {
        let stored = serde_json::from_str::<Stored>(&record.body).ok();
        match stored {
            Some(s) if record.ok => TaskState::Done {
                text: s.text.unwrap_or_default(),
                pages: s.pages.unwrap_or_default(),
                seconds: s.seconds,
            },
            Some(Stored {
                detail: Some(detail),
                seconds,
                ..
            }) => TaskState::Failed {
                reason: FailReason::Recorded(detail),
                seconds,
            },
            _ => TaskState::Failed {
                reason: FailReason::Lost,
                seconds: 0.0,
            },
        }
    }
}

struct Task {
    owner: KeyHash,
    expires: Instant,
    state: TaskState,
    ended: Arc<Notify>,
}

/// How long a result stays readable at least once it is ready, even past the task's expiry
/// (capped at a quarter of the TTL). Without it a task charged just before its expiry would be
/// gone before the client's next poll: paid for and never seen. The API spec advises polling
/// every 1-2 s; 5 s covers that with room for latency.
pub const MIN_RESULT_LIFETIME: Duration = Duration::from_secs(5);

/// All live tasks, keyed by their UUIDv4.
pub struct TaskStore {
    ttl: Duration,
    tasks: Mutex<HashMap<Uuid, Task>>,
}

impl TaskStore {
    /// A store whose tasks live `ttl` after submission.
    pub fn new(ttl: Duration) -> TaskStore {
        TaskStore {
            ttl,
            tasks: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Task>> {
        // A panic elsewhere must not take the whole API down with a poisoned lock.
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the new task `id` (drawn with its credit reservation) for `owner`; returns its
    /// expiry.
    pub fn create(&self, id: Uuid, owner: KeyHash) -> Instant {
        let expires = Instant::now() + self.ttl;
        self.lock().insert(
            id,
            Task {
                owner,
                expires,
                state: TaskState::InProcess,
                ended: Arc::new(Notify::new()),
            },
        );
        expires
    }

    /// The task, unless unknown or expired.
    pub fn get(&self, id: &Uuid) -> Option<TaskView> {
        let tasks = self.lock();
        let task = tasks.get(id)?;
        // Expired tasks answer 404 at once, even if the reaper has not run yet.
        if task.expires <= Instant::now() && task.state != TaskState::Finishing {
            return None;
        }
        Some(TaskView {
            owner: task.owner,
            state: task.state.clone(),
            ended: Some(Arc::clone(&task.ended)),
        })
    }

    /// Claims a task for recording its outcome. False when it expired or vanished, in which case
    /// the caller must not charge: nobody can read the result any more.
    pub fn begin_finish(&self, id: &Uuid) -> bool {
        let mut tasks = self.lock();
        match tasks.get_mut(id) {
            Some(task) if task.expires > Instant::now() => {
                task.state = TaskState::Finishing;
                true
            }
            _ => false,
        }
    }

    /// Stores the outcome of a task and wakes its long-polls. It stays readable until the
    /// task's expiry, and at least [`MIN_RESULT_LIFETIME`] (at most a quarter of the TTL) from now.
    pub fn finish(&self, id: &Uuid, state: TaskState) {
        let floor = Instant::now() + (self.ttl / 4).min(MIN_RESULT_LIFETIME);
        if let Some(task) = self.lock().get_mut(id) {
            task.state = state;
            task.expires = task.expires.max(floor);
            task.ended.notify_waiters();
        }
    }

    /// Forgets a task (e.g. it could not be queued).
    pub fn remove(&self, id: &Uuid) {
        self.lock().remove(id);
    }

    /// Frees expired tasks; returns how many were removed.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        let mut tasks = self.lock();
        let before = tasks.len();
        tasks.retain(|_, t| t.expires > now || t.state == TaskState::Finishing);
        before - tasks.len()
    }

    /// Forgets every task (at shutdown): workers still running then find their task gone and
    /// charge nothing, since no client could collect the result.
    pub fn clear(&self) {
        let mut tasks = self.lock();
        for task in tasks.values() {
            task.ended.notify_waiters();
        }
        tasks.clear();
    }

    /// Number of tasks held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no task is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_expire_and_are_reaped() {
        let store = TaskStore::new(Duration::from_millis(50));
        let id = Uuid::new_v4();
        store.create(id, [0; 32]);
        assert!(store.get(&id).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(store.get(&id).is_none());
        assert!(!store.begin_finish(&id));
        assert_eq!(store.reap(), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn a_result_ready_just_before_expiry_stays_readable_a_while() {
        // TTL 1 s: a result stays readable at least 250 ms once stored.
        let store = TaskStore::new(Duration::from_secs(1));
        let id = Uuid::new_v4();
        store.create(id, [0; 32]);
        std::thread::sleep(Duration::from_millis(800));
        assert!(store.begin_finish(&id));
        // Charging took the task past its expiry; the client has not polled yet.
        std::thread::sleep(Duration::from_millis(300));
        let done = TaskState::Done {
            text: "x".into(),
            pages: Arc::default(),
            seconds: 1.0,
        };
        store.finish(&id, done.clone());
        assert_eq!(store.reap(), 0);
        assert_eq!(store.get(&id).map(|t| t.state), Some(done));
        std::thread::sleep(Duration::from_millis(300));
        assert!(store.get(&id).is_none());
        assert_eq!(store.reap(), 1);
    }

    #[test]
    fn an_early_result_expires_with_its_task() {
        let store = TaskStore::new(Duration::from_millis(400));
        let id = Uuid::new_v4();
        store.create(id, [0; 32]);
        assert!(store.begin_finish(&id));
        store.finish(
            &id,
            TaskState::Failed {
                reason: FailReason::NoSolves,
                seconds: 0.0,
            },
        );
        std::thread::sleep(Duration::from_millis(450));
        assert!(store.get(&id).is_none());
    }
}
