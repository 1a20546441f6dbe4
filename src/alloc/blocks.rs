//! Big blocks (tract's activations), kept for reuse while the big blocks in use and kept stay
//! within a bound.
//!
//! A page's detection allocates and frees ~1100 blocks of 1–42 MiB, op by op. Taken fresh from
//! the system each time, every page of them is faulted in anew; left to mimalloc's arenas, the
//! freed ones stay resident until its purge delay passes, however many there are. Here a freed
//! block is kept only while `live + kept ≤ limit`, and the next request takes the smallest kept
//! block it fits in (up to twice its size), so what a page holds at its peak is bounded and
//! most requests between peaks are served without a fault.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Requests from this size up are big blocks. tract's activations are 0.1–2 MiB for a line,
/// 1–42 MiB for a page; below this mimalloc's own pages serve well.
pub const BIG: usize = 1 << 20;
/// Big blocks are page-aligned: any alignment up to this is served here.
const PAGE: usize = 4096;
/// Most blocks kept at once (a fixed array: the allocator cannot allocate for itself).
const SLOTS: usize = 64;

/// Bytes of big blocks (in use and kept) above which freed ones go back to the system. The
/// packed weights of cached plans count too (they are big blocks), so this leaves a page's
/// detection (60 MiB at its peak at 960²) little to keep; see `alloc` for the trade measured.
static LIMIT: AtomicUsize = AtomicUsize::new(104 << 20);

/// Whether a request of `layout` is a big block.
pub fn is_big(layout: Layout) -> bool {
    layout.size() >= BIG && layout.align() <= PAGE
}

/// Sets the bound on big blocks in use and kept.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// The usable size a new block for `size` bytes gets: rounded up to one of 8 sizes per doubling
/// (at most 12.5 % more), so that blocks fit requests of nearby shapes. The rounding is only
/// touched when a later request uses it.
fn rounded(size: usize) -> usize {
    let step = (1usize << (usize::BITS - 1 - size.leading_zeros())) / 8;
    size.next_multiple_of(step.max(PAGE))
}

/// A kept block: its usable size, its base address (the header page), when it was freed.
#[derive(Clone, Copy)]
struct Kept {
    size: usize,
    base: usize,
    seq: u64,
    generation: u64,
}

const NONE: Kept = Kept {
    size: 0,
    base: 0,
    seq: 0,
    generation: 0,
};

struct Blocks {
    kept: [Kept; SLOTS],
    len: usize,
    /// Bytes of the kept blocks, header pages included.
    kept_bytes: usize,
    /// Bytes of the big blocks in use, header pages included.
    live: usize,
    seq: u64,
}

static BLOCKS: Mutex<Blocks> = Mutex::new(Blocks {
    kept: [NONE; SLOTS],
    len: 0,
    kept_bytes: 0,
    live: 0,
    seq: 0,
});

/// Advanced by [`trim`]: a block freed before the previous trim has not been reused since.
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn blocks() -> MutexGuard<'static, Blocks> {
    BLOCKS.lock().unwrap_or_else(|p| p.into_inner())
}

impl Blocks {
    /// The smallest kept block that `size` fits in, if it is at most twice `size`: a larger one
    /// would hold memory the request does not need. Up to 1.5× instead, a cold page read on one
    /// thread faulted in 143k pages instead of 108k for 5 MiB less peak (`ocrbox ocr --threads
    /// 1 page_0.png`; mimalloc's arenas alone: 55k and 27 MiB less).
    fn take(&mut self, size: usize) -> Option<Kept> {
        let i = (0..self.len)
            .filter(|&i| (size..=2 * size).contains(&self.kept[i].size))
            .min_by_key(|&i| (self.kept[i].size, u64::MAX - self.kept[i].seq))?;
        let k = self.remove(i);
        self.live += k.size + PAGE;
        Some(k)
    }

    fn remove(&mut self, i: usize) -> Kept {
        let k = self.kept[i];
        self.len -= 1;
        self.kept[i] = self.kept[self.len];
        self.kept_bytes -= k.size + PAGE;
        k
    }

    /// Moves the oldest kept blocks to `out` until `need` more bytes fit under the limit.
    fn make_room(&mut self, need: usize, out: &mut Freed) {
        let limit = LIMIT.load(Ordering::Relaxed);
        while self.len > 0 && (self.len == SLOTS || self.live + self.kept_bytes + need > limit) {
            let oldest = (0..self.len).min_by_key(|&i| self.kept[i].seq).unwrap_or(0);
            out.push(self.remove(oldest));
        }
    }

    /// Takes back a freed block: kept if it fits beside the blocks in use, else into `out`.
    fn put(&mut self, size: usize, base: usize, out: &mut Freed) {
        let bytes = size + PAGE;
        self.live -= bytes;
        self.seq += 1;
        let k = Kept {
            size,
            base,
            seq: self.seq,
            generation: GENERATION.load(Ordering::Relaxed),
        };
        if self.live + bytes > LIMIT.load(Ordering::Relaxed) {
            out.push(k);
            return;
        }
        self.make_room(bytes, out);
        self.kept[self.len] = k;
        self.len += 1;
        self.kept_bytes += bytes;
    }
}

/// Blocks to give back to mimalloc once the lock is released.
struct Freed {
    blocks: [Kept; SLOTS + 1],
    len: usize,
}

impl Freed {
    const fn new() -> Freed {
        Freed {
            blocks: [NONE; SLOTS + 1],
            len: 0,
        }
    }

    fn push(&mut self, k: Kept) {
        self.blocks[self.len] = k;
        self.len += 1;
    }

    /// SAFETY: every block was allocated by `mi` as `(size + PAGE, PAGE)` and is not in use.
    unsafe fn free(self, mi: &impl GlobalAlloc) {
        for k in &self.blocks[..self.len] {
            mi.dealloc(k.base as *mut u8, block_layout(k.size));
        }
    }
}

fn block_layout(size: usize) -> Layout {
    // SAFETY: PAGE is a power of two and sizes stay far below isize::MAX (a request was made).
    unsafe { Layout::from_size_align_unchecked(size + PAGE, PAGE) }
}

/// A big block of at least `layout.size()` bytes, zeroed if asked, or null.
///
/// SAFETY: `is_big(layout)`; `mi` is the allocator every big block comes from.
pub unsafe fn alloc(mi: &impl GlobalAlloc, layout: Layout, zeroed: bool) -> *mut u8 {
    let size = rounded(layout.size());
    let mut freed = Freed::new();
    let kept = {
        let mut b = blocks();
        let kept = b.take(layout.size());
        if kept.is_none() {
            b.make_room(size + PAGE, &mut freed);
            b.live += size + PAGE;
        }
        kept
    };
    freed.free(mi);
    if let Some(k) = kept {
        let p = (k.base + PAGE) as *mut u8;
        if zeroed {
            std::ptr::write_bytes(p, 0, layout.size());
        }
        return p;
    }
    // Fresh from the system, a zeroed block needs no memset: mimalloc knows and skips it.
    let base = if zeroed {
        mi.alloc_zeroed(block_layout(size))
    } else {
        mi.alloc(block_layout(size))
    };
    if base.is_null() {
        blocks().live -= size + PAGE;
        return base;
    }
    (base as *mut usize).write(size);
    base.add(PAGE)
}

/// The usable size of a big block.
///
/// SAFETY: `ptr` came from [`alloc`] and is not freed.
pub unsafe fn usable(ptr: *mut u8) -> usize {
    (ptr.sub(PAGE) as *const usize).read()
}

/// Frees a big block (kept for reuse, or given back to mimalloc).
///
/// SAFETY: `ptr` came from [`alloc`] with the same `mi` and is not used again.
pub unsafe fn dealloc(mi: &impl GlobalAlloc, ptr: *mut u8) {
    let base = ptr.sub(PAGE);
    let size = (base as *const usize).read();
    let mut freed = Freed::new();
    blocks().put(size, base as usize, &mut freed);
    freed.free(mi);
}

/// Gives back the kept blocks not reused since the previous call (the service calls this every
/// second, so an idle server keeps none). `all` gives back every kept block.
///
/// SAFETY: `mi` is the allocator every big block comes from.
pub unsafe fn trim(mi: &impl GlobalAlloc, all: bool) {
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    let mut freed = Freed::new();
    {
        let mut b = blocks();
        let mut i = 0;
        while i < b.len {
            if all || b.kept[i].generation < generation {
                freed.push(b.remove(i));
            } else {
                i += 1;
            }
        }
    }
    freed.free(mi);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_by_at_most_an_eighth_to_whole_pages() {
        for size in [
            BIG,
            BIG + 1,
            3 << 20,
            (5 << 20) + 12345,
            42 << 20,
            (1 << 30) + 1,
        ] {
            let r = rounded(size);
            assert!(r >= size && r - size <= size / 8, "{size} -> {r}");
            assert_eq!(r % PAGE, 0);
        }
        assert!(!is_big(Layout::from_size_align(BIG - 1, 8).unwrap()));
        assert!(!is_big(Layout::from_size_align(BIG, 2 * PAGE).unwrap()));
        assert!(is_big(Layout::from_size_align(BIG, PAGE).unwrap()));
    }

    /// Through the process's allocator, which is this one: other tests allocate beside these
    /// blocks, so only what holds whatever they do is asserted.
    #[test]
    fn blocks_are_aligned_sized_and_zeroed_when_reused() {
        let a = crate::alloc::Allocator;
        for (size, align) in [(BIG, 8), ((3 << 20) + 5, 64), (7 << 20, PAGE)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                assert!(usable(p) >= size);
                std::ptr::write_bytes(p, 0xab, size);
                a.dealloc(p, layout);
                // Most likely the block just freed: it must come back zeroed all the same.
                let z = a.alloc_zeroed(layout);
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                a.dealloc(z, layout);
            }
        }
    }

    #[test]
    fn resizing_keeps_the_contents_across_small_and_big() {
        let a = crate::alloc::Allocator;
        let mut layout = Layout::from_size_align(1000, 16).unwrap();
        unsafe {
            let mut p = a.alloc(layout);
            for (i, b) in std::slice::from_raw_parts_mut(p, 1000)
                .iter_mut()
                .enumerate()
            {
                *b = i as u8;
            }
            for size in [2 << 20, (2 << 20) + 100, 9 << 20, 3 << 20, 1000] {
                p = a.realloc(p, layout, size);
                assert!(!p.is_null());
                layout = Layout::from_size_align(size, 16).unwrap();
                let kept = std::slice::from_raw_parts(p, 1000);
                assert!(
                    kept.iter().enumerate().all(|(i, &b)| b == i as u8),
                    "at {size}"
                );
            }
            a.dealloc(p, layout);
        }
    }
}
