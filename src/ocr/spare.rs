//! Idle cores lent to the image in progress.
//!
//! The service runs one image per worker thread, so a page sent to an otherwise idle box would
//! be read on one core while the others wait. The cores of idle workers are therefore lent
//! (as many as `--workers` allots, at most the machine's):
//! an image's lines are classified and recognised on extra threads, each holding a [`Loan`],
//! and a loan is called back as soon as a worker takes a job and the cores are all in use (the
//! helper stops after the line it is reading). Under load nothing is lent, and throughput is
//! what the workers alone give.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The cores OCR may use, how many workers are busy, and how many cores are lent out.
#[derive(Debug)]
pub struct Spare {
    cores: usize,
    busy: AtomicUsize,
    lent: AtomicUsize,
    /// Items of an image's work done on lent cores, ever (a metric).
    done: AtomicU64,
}

/// A worker marked busy for as long as this lives.
pub struct Busy<'a>(&'a Spare);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One idle worker's core, held by a helper thread.
pub struct Loan<'a>(&'a Spare);

impl Spare {
    /// Lends what `cores` cores (the service: `--workers`, at most the machine's) leave free.
    pub fn new(cores: usize) -> Spare {
        Spare {
            cores,
            busy: AtomicUsize::new(0),
            lent: AtomicUsize::new(0),
            done: AtomicU64::new(0),
        }
    }

    /// Marks the calling worker busy (on a job) until the guard is dropped.
    pub fn busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    /// Borrows a core that no worker and no other loan is using, if there is one.
    pub fn borrow(&self) -> Option<Loan<'_>> {
        let busy = self.busy.load(Ordering::SeqCst);
        self.lent
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |lent| {
                (busy + lent < self.cores).then_some(lent + 1)
            })
            .ok()
            .map(|_| Loan(self))
    }

    /// Up to `n` loans, as many as there are free cores.
    pub fn borrow_up_to(&self, n: usize) -> Vec<Loan<'_>> {
        (0..n).map_while(|_| self.borrow()).collect()
    }

    /// Cores lent now.
    #[cfg(test)]
    fn lent(&self) -> usize {
        self.lent.load(Ordering::SeqCst)
    }

    /// Items (line crops, orientation checks, line readings) done on lent cores so far.
    pub fn done_on_loan(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl Loan<'_> {
    /// Counts one item done with this loan.
    pub fn count(&self) {
        self.0.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The loan again if its core is still free, or `None` (and the loan is given back) when
    /// busy workers and loans now need more cores than there are. Only as many loans end as
    /// needed.
    pub fn renew(self) -> Option<Self> {
        let spare = self.0;
        let mut lent = spare.lent.load(Ordering::SeqCst);
        loop {
            if spare.busy.load(Ordering::SeqCst) + lent <= spare.cores {
                return Some(self);
            }
            match spare
                .lent
                .compare_exchange(lent, lent - 1, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => {
                    std::mem::forget(self);
                    return None;
                }
                Err(now) => lent = now,
            }
        }
    }
}

impl Drop for Loan<'_> {
    fn drop(&mut self) {
        self.0.lent.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lends_only_free_cores_and_calls_them_back_when_workers_need_them() {
        let spare = Spare::new(3);
        let first = spare.busy();
        let one = spare.borrow().expect("two cores free");
        let two = spare.borrow().expect("one core free");
        assert!(spare.borrow().is_none(), "all three in use");
        assert_eq!(spare.lent(), 2);
        assert!(spare.borrow_up_to(5).is_empty());
        let one = one.renew().expect("no worker needs it yet");
        // A second worker takes a job: exactly one loan ends, whichever renews first.
        let second = spare.busy();
        assert!(one.renew().is_none());
        assert_eq!(spare.lent(), 1);
        let two = two.renew().expect("busy 2 + lent 1 fit in 3");
        drop(two);
        assert_eq!(spare.lent(), 0);
        // More workers than cores: nothing to lend while they are all busy.
        let (third, fourth) = (spare.busy(), spare.busy());
        assert!(spare.borrow().is_none());
        drop((first, second, third, fourth));
        assert!(spare.borrow().is_some());
    }
}
