//! Reading the event ring buffer.
//!
//! The BPF side wakes the reader only for conflicts or every few thousand events, so a poll
//! that times out must still consume what is there: `drain` polls, then consumes.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, RingBuffer, RingBufferBuilder};

use crate::event::{decode, Record};

/// Records taken per [`EventReader::drain`]: ~16 MB of events, a fraction of a second of work.
pub const BATCH: usize = 1 << 18;

#[derive(Default)]
struct Inbox {
    records: Vec<Record>,
    malformed: u64,
}

/// Reads and decodes records from the `events` ring buffer.
pub struct EventReader {
    ring: RingBuffer<'static>,
    inbox: Rc<RefCell<Inbox>>,
}

impl EventReader {
    pub(super) fn new(events: &dyn MapCore) -> Result<EventReader> {
        let inbox = Rc::new(RefCell::new(Inbox::default()));
        let sink = Rc::clone(&inbox);
        let mut builder = RingBufferBuilder::new();
        builder
            .add(events, move |bytes: &[u8]| {
                let mut inbox = sink.borrow_mut();
                match decode(bytes) {
                    Ok(record) => inbox.records.push(record),
                    Err(_) => inbox.malformed += 1,
                }
                0
            })
            .context("cannot read the event ring buffer")?;
        let ring = builder
            .build()
            .context("cannot read the event ring buffer")?;
        Ok(EventReader { ring, inbox })
    }

    /// Waits up to `timeout` for a wake-up, then moves every pending record into `out`.
    /// Returns how many records were taken (a full [`BATCH`] means more are waiting).
    pub fn drain(&mut self, timeout: Duration, out: &mut Vec<Record>) -> Result<usize> {
        match self.ring.poll(timeout) {
            // A signal (Ctrl-C, the target's exit) cut the wait short: consume anyway.
            Err(e) if e.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            other => other.context("polling the event ring buffer")?,
        }
        self.ring
            .consume()
            .context("reading the event ring buffer")?;
        let taken = self.inbox.borrow().records.len();
        out.append(&mut self.inbox.borrow_mut().records);
        Ok(taken)
    }

    /// Takes everything pending, without waiting (the final read after the target is gone).
    pub fn drain_all(&mut self, out: &mut Vec<Record>) -> Result<()> {
        while self.drain(Duration::ZERO, out)? == BATCH {}
        Ok(())
    }

    /// Records that did not decode (a layout mismatch: should stay 0).
    pub fn malformed(&self) -> u64 {
        self.inbox.borrow().malformed
    }
}
