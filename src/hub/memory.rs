//! Giving freed memory back to the system when subscriptions go.
//!
//! The binary's allocator is mimalloc. A block freed by another thread than the one
//! that allocated it only goes back once the allocating thread's heap is collected;
//! an idle thread never collects, so the memory of patterns compiled on a thread
//! that then sleeps stayed in the process (the hub stayed near 905 MB after 800
//! costly patterns' clients left, measured at ea03e03). So the threads that compile
//! end when they run out of work (their heaps are then abandoned, and any thread's
//! forced collection takes them back), and the threads that drop the last reference
//! to a subscription's matcher force a collection: the matcher thread after a
//! rebuild that removed subscriptions, an isolated worker as it ends.

// The allocator's own function (mimalloc's C API; `libmimalloc-sys` builds and links
// it with the `mimalloc` crate, which the binary uses as its global allocator).
use mimalloc as _;

extern "C" {
    fn mi_collect(force: bool);
}

/// Returns what this thread and abandoned threads' heaps hold free to the system.
/// A few milliseconds at most; call it after freeing much, not per line.
pub fn give_back() {
    // SAFETY: `mi_collect` takes no pointer and has no precondition; it may be called
    // from any thread at any time (with or without mimalloc as the global allocator:
    // then it only collects mimalloc's own, unused heaps).
    unsafe { mi_collect(true) }
}
