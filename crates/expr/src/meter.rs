//! The meter of one evaluation, per thread: the time, iteration and memory budget an
//! expression may spend ([`Budget`]), and the ticks every jq operation and loop iteration
//! makes against it. A leaf: the metered values (`value`) and the sandbox's natives both
//! tick it; it knows neither.

use crate::memory;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// Deepest value an expression may build (inputs, intermediate values and results).
pub const MAX_VALUE_DEPTH: u16 = 256;

/// What one evaluation may spend.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Wall-clock time after which the evaluation fails.
    pub time: Duration,
    /// Loop iterations (`range`, `repeat`, `while`, …) after which the evaluation fails.
    pub iterations: u64,
    /// Bytes the evaluation may hold at once: its input converted for jq, what it builds
    /// and its result (measured by [`crate::memory::Metered`] when the binary installs it).
    pub memory: usize,
}

impl Budget {
    /// The budget of a normal evaluation: 1 s, ten million iterations, 128 MiB.
    pub const DEFAULT: Budget =
        Budget { time: Duration::from_secs(1), iterations: 10_000_000, memory: 128 * 1024 * 1024 };
    /// The small budget of the first, inline attempt (see `Evaluator`): the memory budget
    /// stays the caller's, since running again elsewhere would not need less.
    pub const INLINE: Budget = Budget { time: Duration::from_millis(5), iterations: 10_000, memory: usize::MAX };
}

/// Why a budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exhausted {
    /// The deadline passed.
    Time,
    /// Too many loop iterations.
    Iterations,
    /// The evaluation held more memory than its budget.
    Memory,
    /// The evaluation built a value nested deeper than [`MAX_VALUE_DEPTH`].
    Depth,
}

impl Exhausted {
    /// What the user is told.
    pub fn message(self) -> String {
        match self {
            Exhausted::Time => "expression exceeded its time budget".into(),
            Exhausted::Iterations => "expression exceeded its iteration budget".into(),
            Exhausted::Memory => "expression exceeded its memory budget".into(),
            Exhausted::Depth => {
                format!("expression built a value nested deeper than {} levels", MAX_VALUE_DEPTH)
            }
        }
    }

    /// Whether running again with a bigger time or iteration budget could succeed.
    pub fn retry_with_more_time(self) -> bool {
        matches!(self, Exhausted::Time | Exhausted::Iterations)
    }
}

#[derive(Clone, Copy)]
struct Meter {
    deadline: Instant,
    iterations_left: u64,
    memory: isize,
    /// Operations since the clock was last read.
    ops: u32,
    exhausted: Option<Exhausted>,
}

thread_local! {
    static METER: Cell<Option<Meter>> = const { Cell::new(None) };
}

/// Stack an evaluation may need: jaq recurses per level of a value in path updates, `..`,
/// comparisons and drops, up to [`MAX_VALUE_DEPTH`] levels (about 4 KiB a level in
/// release builds, five times that in debug ones).
const STACK_NEEDED: usize = 8 * 1024 * 1024;
/// Size of the stack an evaluation gets when its thread has less than that left.
const STACK_GROWN: usize = 32 * 1024 * 1024;

/// Runs `f` with `budget` metered on this thread; returns its result and whether the budget
/// ran out while it ran. `f` runs on a fresh stack segment when this thread's stack is too
/// small for the depth limits (test threads, small runtimes); the server's threads are big
/// enough that this never happens there.
pub(crate) fn metered<T>(budget: Budget, f: impl FnOnce() -> T) -> (T, Option<Exhausted>) {
    stacker::maybe_grow(STACK_NEEDED, STACK_GROWN, || metered_here(budget, f))
}

fn metered_here<T>(budget: Budget, f: impl FnOnce() -> T) -> (T, Option<Exhausted>) {
    let meter = Meter {
        deadline: Instant::now() + budget.time,
        iterations_left: budget.iterations,
        memory: isize::try_from(budget.memory).unwrap_or(isize::MAX),
        ops: 0,
        exhausted: None,
    };
    let outer = METER.with(|m| m.replace(Some(meter)));
    let outer_memory = memory::start();
    let out = f();
    let peak_exceeded = memory::live() > meter.memory;
    memory::stop(outer_memory);
    let exhausted = METER.with(|m| m.replace(outer)).and_then(|m| m.exhausted);
    (out, exhausted.or(peak_exceeded.then_some(Exhausted::Memory)))
}

/// Applies `f` to this thread's meter, if one runs.
#[inline]
fn with_meter<T>(f: impl FnOnce(&mut Meter) -> Result<(), T>) -> Result<(), T> {
    METER.with(|cell| match cell.get() {
        None => Ok(()),
        Some(mut m) => {
            let r = f(&mut m);
            cell.set(Some(m));
            r
        }
    })
}

/// One operation on a value: fails once the evaluation's time or memory is spent. The clock
/// is read every 256 operations (~20 ns each time); memory on every one (a thread-local read).
#[inline]
pub(crate) fn tick_op() -> Result<(), Exhausted> {
    with_meter(|m| {
        if let Some(e) = m.exhausted {
            return Err(e);
        }
        if memory::live() > m.memory {
            m.exhausted = Some(Exhausted::Memory);
            return Err(Exhausted::Memory);
        }
        m.ops = m.ops.wrapping_add(1);
        if m.ops % 256 == 0 && Instant::now() >= m.deadline {
            m.exhausted = Some(Exhausted::Time);
            return Err(Exhausted::Time);
        }
        Ok(())
    })
}

/// One loop iteration: an operation that also counts against the iteration budget.
pub(crate) fn tick() -> Result<(), Exhausted> {
    tick_op()?;
    with_meter(|m| {
        if m.iterations_left == 0 {
            m.exhausted = Some(Exhausted::Iterations);
            return Err(Exhausted::Iterations);
        }
        m.iterations_left -= 1;
        Ok(())
    })
}

/// Fails when holding `bytes` more would exceed the memory budget (checked before a big
/// allocation, which the meter would only see afterwards).
pub(crate) fn reserve(bytes: usize) -> Result<(), Exhausted> {
    with_meter(|m| {
        if let Some(e) = m.exhausted {
            return Err(e);
        }
        let after = memory::live().saturating_add(isize::try_from(bytes).unwrap_or(isize::MAX));
        if after > m.memory {
            m.exhausted = Some(Exhausted::Memory);
            return Err(Exhausted::Memory);
        }
        Ok(())
    })
}

/// Marks the budget spent (from places that cannot return an error); the evaluation fails
/// at its next operation.
pub(crate) fn flag(e: Exhausted) {
    let _ = with_meter(|m| {
        m.exhausted.get_or_insert(e);
        Ok::<(), ()>(())
    });
}

/// Whether this thread's budget is spent.
pub(crate) fn exhausted() -> Option<Exhausted> {
    METER.with(|c| c.get().and_then(|m| m.exhausted))
}
