//! Which clocks a channel operation synchronises through, per the Go memory model: the k-th
//! send on a channel happens before the k-th receive completes, and the k-th receive on a
//! channel of capacity C happens before the (k+C)-th send completes. Go's race detector
//! (runtime/chan.go, `racenotify`) gives each buffer slot a clock of its own; so does this.
//!
//! The probes read the channel's state with its lock held (exact), before the operation:
//! - a buffered send fills slot `sendx`; a buffered receive takes slot `recvx`;
//! - a send that finds a receiver waiting hands its value over (the buffer is empty, so
//!   `sendx == recvx`): both use slot `recvx`, as `-race` pretends;
//! - a send that finds the buffer full and no sender queued will be the head of the queue:
//!   the receive that frees a slot takes slot `recvx` and puts this value there; likewise a
//!   receive that finds the buffer empty and no receiver queued gets the next value handed to
//!   it at slot `recvx`. Behind other waiters the slot is unknown: the whole channel.
//!
//! One thing makes the physical slots drift from the k-th/(k+C)-th counting: a hand-off
//! (`runtime.send`) advances neither index outside `-race` builds. So a hand-off on a buffered
//! channel is a barrier: everything released on the channel before it is acquired by every
//! operation after it (more order than Go promises, never less).
//!
//! Where the state is unknown (a `select`, a non-blocking operation's entry, a channel whose
//! indices are out of range) the operation synchronises with the whole channel: it releases
//! to what every slot operation acquires, and acquires everything.

use gotarget::SyncKind;

use crate::event::ChanState;

/// Buffer slots with a clock of their own per channel; slot `s` shares the clock of
/// `s % SLOT_CLOCKS` (merging slots only adds order), so memory stays bounded for channels
/// with huge buffers.
pub const SLOT_CLOCKS: u32 = 64;

/// What one channel operation synchronises through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChanSync {
    /// One buffer slot's clock (index already folded by [`SLOT_CLOCKS`]).
    Slot(u32),
    /// Every operation on the channel: unbuffered channels (one rendezvous clock, as
    /// `-race`), zero-size elements (`-race` merges their slots, all at one address), and
    /// operations whose slot is unknown.
    Whole,
    /// A receive that found the channel closed and empty: it acquires the close, nothing else.
    ClosedEmpty,
    /// A hand-off on a buffered channel: a barrier (see the module documentation).
    Barrier,
    /// Nothing to do (a hand-off on an unbuffered channel: its send already synchronised).
    Nothing,
}

/// How operation `kind` on a channel in `state` (if known) synchronises. `kind` is one of
/// `ChanSend`, `ChanRecv`, `Select`, `ChanHandoff` (`ChanClose` has one rule of its own).
pub fn classify(kind: SyncKind, state: Option<&ChanState>) -> ChanSync {
    let Some(st) = state else {
        return match kind {
            // Without the state, a barrier is the safe side.
            SyncKind::ChanHandoff => ChanSync::Barrier,
            _ => ChanSync::Whole,
        };
    };
    let buffered = st.cap > 0 && !st.zero_size;
    let slot = |index: u32| ChanSync::Slot(index % SLOT_CLOCKS);
    match kind {
        SyncKind::ChanHandoff if buffered => ChanSync::Barrier,
        SyncKind::ChanHandoff => ChanSync::Nothing,
        _ if !buffered => {
            if kind == SyncKind::ChanRecv && st.closed && st.len == 0 {
                ChanSync::ClosedEmpty
            } else {
                ChanSync::Whole
            }
        }
        SyncKind::ChanSend => {
            if st.closed {
                // It panics.
                ChanSync::Whole
            } else if st.receiver_waiting {
                slot(st.recvx)
            } else if st.len < st.cap {
                slot(st.sendx)
            } else if !st.sender_waiting {
                slot(st.recvx)
            } else {
                ChanSync::Whole
            }
        }
        SyncKind::ChanRecv => {
            if st.len > 0 {
                slot(st.recvx)
            } else if st.closed {
                ChanSync::ClosedEmpty
            } else if !st.receiver_waiting {
                slot(st.recvx)
            } else {
                ChanSync::Whole
            }
        }
        _ => ChanSync::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffered(len: u32, cap: u32, sendx: u32, recvx: u32) -> ChanState {
        ChanState {
            len,
            cap,
            sendx,
            recvx,
            ..ChanState::default()
        }
    }

    #[test]
    fn buffered_operations_use_the_slot_the_runtime_will() {
        use SyncKind::{ChanRecv as Recv, ChanSend as Send};
        // Room in the buffer: the send fills sendx; an item there: the receive takes recvx.
        let st = buffered(1, 4, 3, 2);
        assert_eq!(classify(Send, Some(&st)), ChanSync::Slot(3));
        assert_eq!(classify(Recv, Some(&st)), ChanSync::Slot(2));
        // Full, no sender queued: this send waits at the head for the slot recvx frees.
        assert_eq!(
            classify(Send, Some(&buffered(4, 4, 1, 1))),
            ChanSync::Slot(1)
        );
        // Empty, no receiver queued: this receive is handed the next value at recvx.
        assert_eq!(
            classify(Recv, Some(&buffered(0, 4, 2, 2))),
            ChanSync::Slot(2)
        );
        // A receiver waiting: the send hands over at recvx.
        let waiting = ChanState {
            receiver_waiting: true,
            ..buffered(0, 4, 2, 2)
        };
        assert_eq!(classify(Send, Some(&waiting)), ChanSync::Slot(2));
        // Behind other waiters the slot is unknown.
        assert_eq!(classify(Recv, Some(&waiting)), ChanSync::Whole);
        let queued = ChanState {
            sender_waiting: true,
            ..buffered(4, 4, 0, 0)
        };
        assert_eq!(classify(Send, Some(&queued)), ChanSync::Whole);
        // A receive with senders queued still takes the head item.
        assert_eq!(classify(Recv, Some(&queued)), ChanSync::Slot(0));
        // Huge buffers fold their slots.
        assert_eq!(
            classify(Send, Some(&buffered(0, 1000, 70, 70))),
            ChanSync::Slot(70 % SLOT_CLOCKS)
        );
    }

    #[test]
    fn closed_unbuffered_zero_size_and_unknown() {
        let closed = ChanState {
            closed: true,
            ..buffered(0, 2, 1, 1)
        };
        assert_eq!(
            classify(SyncKind::ChanRecv, Some(&closed)),
            ChanSync::ClosedEmpty
        );
        // Items left in a closed channel are received as usual.
        let draining = ChanState {
            closed: true,
            ..buffered(1, 2, 1, 0)
        };
        assert_eq!(
            classify(SyncKind::ChanRecv, Some(&draining)),
            ChanSync::Slot(0)
        );
        let unbuffered = buffered(0, 0, 0, 0);
        assert_eq!(
            classify(SyncKind::ChanSend, Some(&unbuffered)),
            ChanSync::Whole
        );
        assert_eq!(
            classify(SyncKind::ChanHandoff, Some(&unbuffered)),
            ChanSync::Nothing
        );
        let zero = ChanState {
            zero_size: true,
            ..buffered(0, 2, 0, 0)
        };
        assert_eq!(classify(SyncKind::ChanSend, Some(&zero)), ChanSync::Whole);
        assert_eq!(classify(SyncKind::ChanSend, None), ChanSync::Whole);
        assert_eq!(classify(SyncKind::Select, None), ChanSync::Whole);
        assert_eq!(classify(SyncKind::ChanHandoff, None), ChanSync::Barrier);
        assert_eq!(
            classify(SyncKind::ChanHandoff, Some(&buffered(0, 2, 1, 1))),
            ChanSync::Barrier
        );
    }
}
