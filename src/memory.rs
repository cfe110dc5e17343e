//! Giving memory back to the system once a burst is over.
//!
//! What the daemon holds between bursts is bounded (page caches, the
//! stations' quality-control windows, the actors); what a burst takes
//! beyond that is freed when it ends, but an allocator keeps freed memory
//! for reuse, so the resident memory would stay at the burst's peak. The
//! library knows when the work is done (the store has gone quiet), and the
//! binary knows its allocator: the binary registers how to hand freed
//! memory back ([`set_give_back`]), and the library calls [`give_back`] at
//! the end of each quiet-making event.

use std::sync::OnceLock;

static GIVE_BACK: OnceLock<fn()> = OnceLock::new();

/// Registers how freed memory is handed back to the system (the binary's
/// allocator and the C library's). The first registration holds.
pub fn set_give_back(f: fn()) {
    let _ = GIVE_BACK.set(f);
}

/// Hands freed memory back to the system, if the binary said how. Costs
/// a few milliseconds: call it when a burst of work has ended, not per
/// item.
pub fn give_back() {
    if let Some(f) = GIVE_BACK.get() {
        f();
    }
    metrics::counter!("isobar_memory_given_back_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn the_registered_give_back_is_what_runs() {
        give_back();
        set_give_back(|| {
            CALLS.fetch_add(1, Ordering::SeqCst);
        });
        // A second registration does not replace the first.
        set_give_back(|| panic!("replaced"));
        give_back();
        give_back();
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }
}
