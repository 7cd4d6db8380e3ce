//! How much memory an evaluation holds: a global allocator wrapper that counts, per thread,
//! the bytes allocated minus the bytes freed while an evaluation is metered there.
//!
//! jq values share their children and jaq allocates everywhere (strings, arrays, objects,
//! iterators), so counting what an expression builds by looking at values would be either
//! wrong (shared parts counted many times) or slow. The allocator knows exactly. An
//! evaluation runs on one thread from start to end (jaq values are never handed to another
//! thread mid-evaluation), so a thread-local count is the evaluation's count.
//!
//! The binary installs it (`#[global_allocator] static A: Metered<MiMalloc> = …`); without
//! it, [`live`] stays 0 and only the other limits apply. The cost outside evaluations is
//! one thread-local flag read per allocation.
//!
//! The allocator never fails an allocation because of the budget (an allocator must not
//! unwind, and a null pointer aborts the process): the meter is read at the evaluation's
//! next operation, which then fails ([`crate::sandbox`]). Operations that could allocate a
//! lot at once (`"x" * 1e9`, concatenations) check [`live`] plus their size first.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// A global allocator that meters what evaluations allocate; wraps another allocator.
pub struct Metered<A>(pub A);

thread_local! {
    /// Bytes allocated minus bytes freed on this thread since metering started; `None`
    /// while nothing is metered here. `const`-initialised and without a destructor, so
    /// reading it never allocates (the allocator calls it).
    static LIVE: Cell<Option<isize>> = const { Cell::new(None) };
}

#[inline]
fn count(delta: isize) {
    // `try_with`: during thread teardown the slot may be gone; then nothing is metered.
    let _ = LIVE.try_with(|live| {
        if let Some(n) = live.get() {
            live.set(Some(n.wrapping_add(delta)));
        }
    });
}

// SAFETY: every method forwards to the wrapped allocator with the same arguments and returns
// its result unchanged; the bookkeeping touches only a thread-local `Cell` and never
// allocates or unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Metered<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see above).
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { self.0.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Starts metering this thread (from 0); returns what was metered before, for [`stop`].
pub(crate) fn start() -> Option<isize> {
    LIVE.with(|l| l.replace(Some(0)))
}

/// Stops metering this thread, restoring what [`start`] returned (a nested evaluation adds
/// what it still holds to the outer one's count).
pub(crate) fn stop(outer: Option<isize>) {
    LIVE.with(|l| {
        let inner = l.get().unwrap_or(0);
        l.set(outer.map(|o| o.wrapping_add(inner)));
    });
}

/// Bytes held by the evaluation metered on this thread (0 when none is, or when the
/// allocator is not installed).
#[inline]
pub fn live() -> isize {
    LIVE.with(|l| l.get().unwrap_or(0))
}
