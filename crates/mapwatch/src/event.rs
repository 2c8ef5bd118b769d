//! The decoded events: what the BPF programs in `bpf/mapwatch.bpf.c` emit, as Rust types.
//!
//! The wire layout is `struct event` / `struct conflict_event` in `bpf/event.h`; decoding is
//! done field by field from little-endian bytes so a short or foreign record is an error, not
//! undefined behaviour.

use gotarget::{MapOp, SyncKind};

/// The records' layout, generated at build time from `bpf/event.h`: sizes, field offsets,
/// flags and enum values (`bpf/event_layout.c` prints them).
#[allow(dead_code)] // every field is generated; not every one is read
pub(crate) mod layout {
    include!(concat!(env!("OUT_DIR"), "/event_layout.rs"));
}
use layout::*;

pub use layout::{CONFLICT_EVENT_SIZE, EVENT_SIZE, OP_SLOTS, STACK_DEPTH, STACK_EVENT_SIZE};

// The enums shared with event.h must agree with it.
const _: () = {
    assert!(MapOp::Read as u8 == OP_READ && MapOp::Write as u8 == OP_WRITE);
    assert!(MapOp::Delete as u8 == OP_DELETE && MapOp::Clear as u8 == OP_CLEAR);
    assert!(MapOp::IterStart as u8 == OP_ITER_START && MapOp::IterNext as u8 == OP_ITER_NEXT);
    assert!(MapOp::Make as u8 == OP_MAKE && OP_MAKE as usize + 1 == OP_SLOTS);
    assert!(SyncKind::GoStart as u8 == OP_GO_START && OP_GO_START == OP_SYNC_FIRST);
    assert!(KeyMode::None as u8 == KEY_NONE && KeyMode::Value as u8 == KEY_VALUE);
    assert!(KeyMode::String as u8 == KEY_STRING && KeyMode::Indirect as u8 == KEY_INDIRECT);
};

/// Attach cookie: which op a probe reports and how its key is passed (`COOKIE_*` in event.h).
pub fn cookie(op: MapOp, key_mode: KeyMode) -> u64 {
    (op as u64) << COOKIE_OP_SHIFT | (key_mode as u64) << COOKIE_KEY_MODE_SHIFT
}

/// The cookie of a probe on a call to a map function, or on where it returns
/// ([`gotarget::MapCall`]): the function lies `rel32` bytes past the call's return address.
pub fn call_cookie(op: MapOp, key_mode: KeyMode, rel32: i32, after_call: bool) -> u64 {
    const _: () = assert!(CALL_LEN as u64 == gotarget::MapCall::LEN);
    let shift = if after_call {
        COOKIE_AFTER_CALL_SHIFT
    } else {
        COOKIE_AT_CALL_SHIFT
    };
    cookie(op, key_mode) | 1 << shift | (rel32 as u32 as u64) << COOKIE_CALL_REL_SHIFT
}

/// How a map entry point receives its key (`enum key_mode` in event.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum KeyMode {
    /// No key: clear, iterate, make.
    None = 0,
    /// The key itself in CX (fast32, fast64, fast64ptr).
    Value = 1,
    /// A string: data pointer in CX, length in DI (faststr).
    String = 2,
    /// A pointer to the key in CX (generic and fat entry points).
    Indirect = 3,
}

impl KeyMode {
    /// The key mode of a map entry point variant as `gotarget` names them.
    pub fn for_variant(op: MapOp, variant: &str) -> KeyMode {
        match op {
            MapOp::Read | MapOp::Write | MapOp::Delete => match variant {
                "fast32" | "fast64" | "fast32ptr" | "fast64ptr" => KeyMode::Value,
                "faststr" => KeyMode::String,
                _ => KeyMode::Indirect,
            },
            _ => KeyMode::None,
        }
    }
}

/// One map operation seen by a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEvent {
    /// Kernel monotonic time, ns.
    pub ts: u64,
    /// The map header's address: the map's identity while it lives.
    pub map: u64,
    /// The map type descriptor's address (0 where the entry point has none).
    pub map_type: u64,
    /// Goroutine id.
    pub goid: u64,
    /// Return address into the direct caller.
    pub ret: u64,
    /// The key, or its first 8 bytes.
    pub key: u64,
    /// The direct caller's own return address (its caller's call site); 0 if unknown.
    pub caller: u64,
    /// The map's hash seed, random per map: a new map at a reused address has another.
    pub seed: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// CPU it ran on.
    pub cpu: u16,
    /// What the operation was.
    pub op: MapOp,
    /// The map's write-in-progress flag was set when this access began.
    pub saw_writing: bool,
    /// Not an operation but the Go runtime's own "concurrent map ..." fatal error, raised by
    /// this goroutine during its operation `op` on `map`.
    pub runtime_fatal: bool,
}

/// The write that was in progress when a conflicting access began.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlightWrite {
    /// Goroutine id of the writer.
    pub goid: u64,
    /// Return address into the writer's direct caller.
    pub ret: u64,
    /// When the write began, kernel monotonic ns.
    pub ts: u64,
    /// The writer's user stack at the conflict: the map function's probe address, then
    /// return addresses (the direct caller first). Two or three frames only when the writer
    /// had already returned from its caller by then.
    pub stack: Vec<u64>,
    /// The writer's thread.
    pub tid: u32,
    /// The write's op (write, delete, clear).
    pub op: MapOp,
}

/// One synchronisation operation seen by a probe: a happens-before edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncEvent {
    /// Kernel monotonic time, ns.
    pub ts: u64,
    /// What it was.
    pub kind: SyncKind,
    /// The channel, lock, WaitGroup or Value; 0 when the probe could not recover it (the
    /// detector then treats it as synchronising with everything).
    pub object: u64,
    /// Goroutine id (for `GoStart`, the parent).
    pub goid: u64,
    /// For `GoStart`, the new goroutine's id; for `CoroSwitch`, the resumed one's (0 if
    /// unknown).
    pub child: u64,
    /// The caller (real calls) or the probed instruction (inlined operations).
    pub pc: u64,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// For a channel operation probed with the channel's lock held, the channel's state then.
    pub chan: Option<ChanState>,
}

/// A channel's state as its operation found it, with the channel locked (so exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChanState {
    /// Elements in the buffer.
    pub len: u32,
    /// Buffer capacity (0: unbuffered).
    pub cap: u32,
    /// The slot the next buffered send fills.
    pub sendx: u32,
    /// The slot the next buffered receive takes.
    pub recvx: u32,
    /// The channel is closed.
    pub closed: bool,
    /// A receiver is waiting (in `recvq`).
    pub receiver_waiting: bool,
    /// A sender is waiting (in `sendq`).
    pub sender_waiting: bool,
    /// The elements have size 0 (`chan struct{}`).
    pub zero_size: bool,
}

impl ChanState {
    /// The state packed into a sync record (`EVENT_F_CHAN_*` in event.h), if it carries one.
    fn from_record(len_cap: u64, indices: u64, flags: u8) -> Option<ChanState> {
        (flags & F_CHAN_STATE != 0).then_some(ChanState {
            len: len_cap as u32,
            cap: (len_cap >> 32) as u32,
            sendx: indices as u32,
            recvx: (indices >> 32) as u32,
            closed: flags & F_CHAN_CLOSED != 0,
            receiver_waiting: flags & F_CHAN_RECVQ != 0,
            sender_waiting: flags & F_CHAN_SENDQ != 0,
            zero_size: flags & F_CHAN_ZERO != 0,
        })
    }
}

/// A decoded ring buffer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// An ordinary map operation.
    Op(MapEvent),
    /// A map operation from a call site not seen before, with the return addresses above it.
    OpAtNewSite {
        /// The access.
        access: MapEvent,
        /// `access.ret`, then the frame-pointer chain of its function's callers.
        stack: Vec<u64>,
    },
    /// A synchronisation operation.
    Sync(SyncEvent),
    /// An access that found another goroutine's write in progress on the same map.
    Conflict {
        /// The access.
        access: MapEvent,
        /// Its user stack: the probe address, then return addresses.
        stack: Vec<u64>,
        /// The write it found in progress.
        writer: InFlightWrite,
    },
}

/// A record that does not match the layout in event.h.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed event record: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Little-endian fields of a record at their offsets; the record's length is checked first.
#[derive(Clone, Copy)]
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn bytes<const N: usize>(self, at: usize) -> [u8; N] {
        self.0[at..at + N].try_into().expect("length checked")
    }
    fn u64(self, at: usize) -> u64 {
        u64::from_le_bytes(self.bytes(at))
    }
    fn u32(self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes(at))
    }
    fn u16(self, at: usize) -> u16 {
        u16::from_le_bytes(self.bytes(at))
    }
    fn u8(self, at: usize) -> u8 {
        self.0[at]
    }
    /// The first `depth` frames of the `STACK_DEPTH` array at `at`.
    fn stack(self, at: usize, depth: usize) -> Result<Vec<u64>, DecodeError> {
        if depth > STACK_DEPTH {
            return Err(DecodeError(format!("stack depth {depth}")));
        }
        Ok((0..depth).map(|i| self.u64(at + 8 * i)).collect())
    }
}

fn op(raw: u8) -> Result<MapOp, DecodeError> {
    MapOp::from_u8(raw).ok_or_else(|| DecodeError(format!("unknown op {raw}")))
}

/// Decodes one ring buffer record: a `struct event` or `struct conflict_event`.
pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
    if ![EVENT_SIZE, STACK_EVENT_SIZE, CONFLICT_EVENT_SIZE].contains(&bytes.len()) {
        return Err(DecodeError(format!("{} bytes", bytes.len())));
    }
    let r = Fields(bytes);
    let e = CONFLICT_EV; // a conflict_event begins with its struct event
    let raw_op = r.u8(e + EVENT_OP);
    let flags = r.u8(e + EVENT_FLAGS);
    if let Some(kind) = SyncKind::from_u8(raw_op) {
        if bytes.len() != EVENT_SIZE {
            return Err(DecodeError("sync record with a conflict's size".into()));
        }
        return Ok(Record::Sync(SyncEvent {
            ts: r.u64(EVENT_TS),
            kind,
            object: r.u64(EVENT_MAP),
            goid: r.u64(EVENT_GOID),
            child: r.u64(EVENT_KEY),
            pc: r.u64(EVENT_RET),
            pid: r.u32(EVENT_PID),
            tid: r.u32(EVENT_TID),
            chan: ChanState::from_record(r.u64(EVENT_TYPE), r.u64(EVENT_KEY), flags),
        }));
    }
    let event = MapEvent {
        ts: r.u64(e + EVENT_TS),
        map: r.u64(e + EVENT_MAP),
        map_type: r.u64(e + EVENT_TYPE),
        goid: r.u64(e + EVENT_GOID),
        ret: r.u64(e + EVENT_RET),
        key: r.u64(e + EVENT_KEY),
        caller: r.u64(e + EVENT_CALLER),
        seed: r.u64(e + EVENT_SEED),
        pid: r.u32(e + EVENT_PID),
        tid: r.u32(e + EVENT_TID),
        cpu: r.u16(e + EVENT_CPU),
        op: op(raw_op)?,
        saw_writing: flags & F_WRITING != 0,
        runtime_fatal: flags & F_RUNTIME != 0,
    };
    if flags & F_STACK != 0 {
        if bytes.len() != STACK_EVENT_SIZE {
            return Err(DecodeError("stack flag does not match record size".into()));
        }
        let stack = r.stack(STACK_EVENT_STACK, r.u32(STACK_EVENT_DEPTH) as usize)?;
        return Ok(Record::OpAtNewSite {
            access: event,
            stack,
        });
    }
    let is_conflict = flags & F_CONFLICT != 0;
    if is_conflict != (bytes.len() == CONFLICT_EVENT_SIZE) {
        return Err(DecodeError(
            "conflict flag does not match record size".into(),
        ));
    }
    if !is_conflict {
        return Ok(Record::Op(event));
    }
    let w = CONFLICT_OTHER;
    let stack = r.stack(CONFLICT_STACK, r.u32(CONFLICT_DEPTH) as usize)?;
    let writer_stack = r.stack(CONFLICT_OTHER_STACK, r.u32(CONFLICT_OTHER_DEPTH) as usize)?;
    Ok(Record::Conflict {
        access: event,
        stack,
        writer: InFlightWrite {
            goid: r.u64(w + WRITER_GOID),
            ret: r.u64(w + WRITER_RET),
            ts: r.u64(w + WRITER_TS),
            stack: writer_stack,
            tid: r.u32(w + WRITER_TID),
            op: op(r.u8(w + WRITER_OP))?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_event(op: u8, flags: u8) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [1u64, 0xc000, 0x4a0000, 7, 0x401234, 42, 0x409999, 0x5eed] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&100u32.to_le_bytes());
        b.extend_from_slice(&101u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.push(op);
        b.push(flags);
        b.extend_from_slice(&[0; 4]);
        b
    }

    fn raw_stack(frames: &[u64]) -> Vec<u8> {
        let mut b = Vec::new();
        for i in 0..STACK_DEPTH {
            b.extend_from_slice(&frames.get(i).copied().unwrap_or(0).to_le_bytes());
        }
        b
    }

    #[test]
    fn decodes_an_op() {
        let Record::Op(e) = decode(&raw_event(2, 0)).unwrap() else {
            panic!("not an op")
        };
        assert_eq!(e.op, MapOp::Write);
        assert_eq!(
            (e.map, e.goid, e.ret, e.key, e.caller, e.seed, e.pid, e.tid),
            (0xc000, 7, 0x401234, 42, 0x409999, 0x5eed, 100, 101)
        );
        assert!(!e.saw_writing);
    }

    #[test]
    fn decodes_a_conflict() {
        let mut b = raw_event(1, F_WRITING | F_CONFLICT);
        for v in [9u64, 0x401000, 0x405555, 0xc000123, 0x406666, 77] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&102u32.to_le_bytes());
        b.push(2);
        b.extend_from_slice(&[0; 3]);
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend(raw_stack(&[0x402000, 0x401234, 0x407777]));
        b.extend(raw_stack(&[0x401000, 0x405555]));
        assert_eq!(b.len(), CONFLICT_EVENT_SIZE);
        let Record::Conflict {
            access: e,
            stack,
            writer: w,
        } = decode(&b).unwrap()
        else {
            panic!("not a conflict")
        };
        assert_eq!((e.op, e.saw_writing), (MapOp::Read, true));
        assert_eq!(stack, [0x402000, 0x401234, 0x407777]);
        assert_eq!(
            (w.goid, w.ret, w.ts, w.tid, w.op),
            (9, 0x405555, 77, 102, MapOp::Write)
        );
        assert_eq!(w.stack, [0x401000, 0x405555]);
        // A depth past the array is malformed.
        b[CONFLICT_DEPTH..CONFLICT_DEPTH + 4].copy_from_slice(&99u32.to_le_bytes());
        assert!(decode(&b).is_err());
    }

    #[test]
    fn decodes_an_op_at_a_new_site_with_its_stack() {
        let mut b = raw_event(1, F_STACK);
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend(raw_stack(&[0x401234, 0x409999, 0x40aaaa]));
        assert_eq!(b.len(), STACK_EVENT_SIZE);
        let Record::OpAtNewSite { access, stack } = decode(&b).unwrap() else {
            panic!("not an op at a new site")
        };
        assert_eq!((access.op, access.ret), (MapOp::Read, 0x401234));
        assert_eq!(stack, [0x401234, 0x409999, 0x40aaaa]);
        // The flag on a plain record's size is malformed.
        assert!(decode(&raw_event(1, F_STACK)).is_err());
    }

    #[test]
    fn decodes_a_sync_op() {
        let Record::Sync(e) = decode(&raw_event(SyncKind::GoStart as u8, 0)).unwrap() else {
            panic!("not a sync op")
        };
        assert_eq!(e.kind, SyncKind::GoStart);
        assert_eq!((e.object, e.goid, e.child, e.pc), (0xc000, 7, 42, 0x401234));
        assert_eq!(e.chan, None);
    }

    #[test]
    fn decodes_a_locked_channels_state() {
        let mut b = raw_event(SyncKind::ChanRecv as u8, F_CHAN_STATE | F_CHAN_SENDQ);
        b[16..24].copy_from_slice(&(2u64 | 4 << 32).to_le_bytes()); // len 2, cap 4
        b[40..48].copy_from_slice(&(3u64 | 1 << 32).to_le_bytes()); // sendx 3, recvx 1
        let Record::Sync(e) = decode(&b).unwrap() else {
            panic!("not a sync op")
        };
        assert_eq!(
            e.chan,
            Some(ChanState {
                len: 2,
                cap: 4,
                sendx: 3,
                recvx: 1,
                sender_waiting: true,
                ..ChanState::default()
            })
        );
    }

    #[test]
    fn rejects_malformed_records() {
        assert!(decode(&[0; 10]).is_err());
        assert!(decode(&raw_event(99, 0)).is_err());
        // Conflict flag on a short record.
        assert!(decode(&raw_event(1, F_CONFLICT)).is_err());
        // 0 is never an op: a zeroed record is invalid.
        assert!(decode(&[0; EVENT_SIZE]).is_err());
    }
}
