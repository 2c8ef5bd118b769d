/* Records shared by the BPF programs (mapwatch.bpf.c) and their reader (src/event.rs).
 * The Rust side's sizes, offsets and constants are generated from this file by build.rs
 * (bpf/event_layout.c): list a new field or constant there too. */
#ifndef MAPWATCH_EVENT_H
#define MAPWATCH_EVENT_H

#include <linux/types.h>

/* Operation classes: gotarget::MapOp's discriminants (0 is never used). */
enum map_op {
	OP_READ = 1,
	OP_WRITE = 2,
	OP_DELETE = 3,
	OP_ITER_START = 4,
	OP_ITER_NEXT = 5,
	OP_CLEAR = 6,
	OP_MAKE = 7,
	OP_SLOTS = 8, /* counter slots, indexed by op */
};

/* Synchronisation operations (gotarget::SyncKind) use op values from 16 up: GoStart 16 ...
 * CoroSwitch 37. Their records are a struct event with map = the object (channel, lock,
 * WaitGroup, Value, coroutine; 0 when unknown), key = the child's goid for GoStart and the
 * resumed goroutine's for CoroSwitch, ret = the caller (real calls) or the probed instruction
 * (inlined operations). */
#define OP_SYNC_FIRST 16
#define OP_GO_START 16

/* How a sync probe finds its object (struct sync_site.form; gotarget::ObjectAddr). */
enum addr_form {
	ADDR_REGS = 0,       /* base + index * scale + disp */
	ADDR_FROM_PROBE = 1, /* probe address + disp */
	ADDR_LOADED = 2,     /* *(base + slot) + disp */
	ADDR_UNKNOWN = 3,    /* not recoverable: reported as object 0 */
	ADDR_SELECT = 4,     /* selectgo: scase array in AX, nsends DI, nrecvs SI */
	ADDR_NEW_G = 5,      /* a new g in register base (newproc1's result): parent and child goids */
	ADDR_NONE = 6,       /* no object (goroutine exit) */
	ADDR_CORO = 7,       /* coroswitch_m: the switching g in base, the coroutine at g + slot; key =
			      * the goid of the g it resumes (the coroutine's gp) */
};

/* Registers by number (gotarget::Reg). */
enum reg { R_AX, R_BX, R_CX, R_DX, R_SI, R_DI, R_BP, R_SP, R_8, R_9, R_10, R_11, R_12, R_13, R_14, R_15 };
#define REG_NONE 0xff

/* One sync probe site; the probe's attach cookie is its index in the sync_sites array. */
struct sync_site {
	__u8 kind;   /* op value (SyncKind) */
	__u8 form;   /* enum addr_form */
	__u8 base;   /* enum reg */
	__u8 index;  /* enum reg or REG_NONE */
	__u8 scale;
	__u8 at_call; /* probe after a real call's stack check: *RSP is the caller */
	__u8 chan_state; /* the object is a channel whose lock is held: report its state */
	__u8 pad;
	__s64 disp;
	__s64 slot;
};

/* Channels of one select reported, at most. */
#define SELECT_CASES 8

/* How the key is passed, per probe (carried in the attach cookie). */
enum key_mode {
	KEY_NONE = 0,  /* clear, iterate, make */
	KEY_VALUE = 1, /* fast32/fast64/fast64ptr: the key itself in CX */
	KEY_STRING = 2, /* faststr: CX = data, DI = len; first 8 bytes kept */
	KEY_INDIRECT = 3, /* generic/fat: CX points at the key; first 8 bytes kept */
};

/* Attach cookie: op in bits 0-7, key mode in bits 8-15. A probe in the caller rather than in
 * the map function has bit 16 set when it is on a `call rel32` to the function, bit 17 when it
 * is on the instruction the call returns to, and the call's displacement in bits 32-63: the
 * function lies that far past the return address (RIP + 5, or RIP). */
#define COOKIE_OP(c) ((__u8)((c) & 0xff))
#define COOKIE_KEY_MODE(c) ((__u8)(((c) >> 8) & 0xff))
#define COOKIE_AT_CALL(c) (((c) >> 16) & 1)
#define COOKIE_AFTER_CALL(c) (((c) >> 17) & 1)
#define COOKIE_CALL_REL(c) ((__s64)(__s32)((c) >> 32))
#define CALL_LEN 5

#define EVENT_F_WRITING 0x01  /* the map's write-in-progress flag was set at this access */
#define EVENT_F_CONFLICT 0x02 /* ...by another goroutine: the record is a struct conflict_event */
#define EVENT_F_RUNTIME 0x04  /* the Go runtime itself detected it (it is about to kill the target) */
#define EVENT_F_STACK 0x08    /* a map op's record is a struct stack_event (map ops only) */
/* Sync records of a locked channel (sync_site.chan_state): `type` holds qcount (bits 0-31) and
 * the capacity (32-63), `key` sendx (0-31) and recvx (32-63), and these flags say the rest. */
#define EVENT_F_CHAN_STATE 0x08  /* the channel's state is in the record */
#define EVENT_F_CHAN_CLOSED 0x10 /* closed */
#define EVENT_F_CHAN_RECVQ 0x20  /* a receiver is waiting */
#define EVENT_F_CHAN_SENDQ 0x40  /* a sender is waiting */
#define EVENT_F_CHAN_ZERO 0x80   /* zero-size elements */

/* Bytes of the map header the programs read at once: the write flag and the seed lie in its
 * first MAP_HEAD - 8 (the classic hmap and the Swiss maps.Map are 48 bytes in Go 1.21-1.27). */
#define MAP_HEAD 48

/* One map operation, 80 bytes. */
struct event {
	__u64 ts;     /* bpf_ktime_get_ns */
	__u64 map;    /* map header pointer (hmap / maps.Map) */
	__u64 type;   /* map type descriptor pointer, 0 where the op has none */
	__u64 goid;
	__u64 ret;    /* return address: the direct caller, *(u64 *)RSP */
	__u64 key;    /* the key (fast variants) or its first 8 bytes */
	__u64 caller; /* the direct caller's own return address (map ops; 0 if unknown) */
	__u64 seed;   /* the map's hash seed: with `map`, the map's identity */
	__u32 pid;
	__u32 tid;
	__u16 cpu;
	__u8 op;
	__u8 flags;
	__u32 pad;
};

/* A map's write as recorded when it began: enough to walk the writer's stack later, while it
 * is still inside the write (its callers' frames are intact until they return). */
struct writer {
	__u64 goid;
	__u64 ip;   /* in the map function: the probe address, or the entry for a call site */
	__u64 ret;  /* the return address in the direct caller */
	__u64 fp;   /* RBP at the probe: the caller's frame pointer */
	__u64 caller_ret; /* *(fp + 8) when the write began: the frame is intact while it still holds this */
	__u64 ts;
	__u32 tid;
	__u8 op;
	__u8 pad[3];
};

/* A map's most recent writers, a ring: a goroutine's consecutive writes share a slot, and a
 * new writer claims the next with an atomic increment of `seq`, so two writes that begin at
 * once on two CPUs (exactly when Go's own check may fire) both stay recorded. The write in
 * progress is the latest one by another goroutine. */
#define WRITER_SLOTS 4
struct writers {
	__u64 seq;
	struct writer slot[WRITER_SLOTS];
};

/* The map operation a thread began last, for the runtime's fatal error to name its map: the
 * runtime stops the operation on the same thread moments later. A cache line each, so that
 * threads do not contend for one. */
struct last_op {
	__u64 map;
	__u64 ret; /* the call's return address, to tell it is this operation the runtime stops */
	__u32 tid;
	__u8 op;
	__u8 pad[43];
};

/* Per CPU: counters, and what the programs remember between hits on the CPU. */
struct cpu_state {
	__u64 ops[OP_SLOTS]; /* operations seen, by op */
	__u64 drops;         /* records lost to a full ring buffer */
	__u64 events;        /* records sent (paces the reader's wake-ups) */
	__u64 sync;          /* synchronisation operations seen */
	/* The goroutine last seen here: its g (R14), its goid, and the g_epoch the goid was read in. */
	__u64 g;
	__u64 goid;
	__u64 g_epoch;
};

/* Frames per stack in a conflict: the probe address, the direct caller, then the
 * frame-pointer chain. */
#define STACK_DEPTH 48

/* An access that found another goroutine's write in progress on the same map, with both
 * user stacks (innermost first; `depth` entries used). */
struct conflict_event {
	struct event ev;
	struct writer other;
	__u32 depth;
	__u32 other_depth;
	__u64 stack[STACK_DEPTH];
	__u64 other_stack[STACK_DEPTH];
};

/* A map operation from a call site (return address and caller) not seen before, with the
 * return addresses above it (`stack[0]` is `ev.ret`, then the frame-pointer chain from its
 * function; `depth` entries used). Later operations from the same site are plain events. */
struct stack_event {
	struct event ev;
	__u32 depth;
	__u32 pad;
	__u64 stack[STACK_DEPTH];
};

/* Offsets of the runtime.hchan fields read at a locked channel (gotarget::ChanLayout). */
struct chan_layout {
	__u32 qcount;
	__u32 dataqsiz;
	__u32 elemsize;
	__u32 closed;
	__u32 sendx;
	__u32 recvx;
	__u32 recvq_first;
	__u32 sendq_first;
};

/* Map entry points that only forward to another probed one (Go 1.27's mapaccess1* call
 * mapaccess2*): a probe that finds its return address inside one reports the forwarder's own
 * caller instead, the user's call site. */
#define FORWARDERS 8
struct code_range {
	__u64 lo;
	__u64 hi; /* one past the end */
};

/* Read-only configuration, set before load from the target's offsets. */
struct config {
	__u32 goid_offset;      /* runtime.g.goid */
	__u32 parent_goid_offset; /* runtime.g.parentGoid */
	__u32 write_flag_offset; /* hmap.flags / maps.Map.writing */
	__u32 seed_offset;      /* hmap.hash0 / maps.Map.seed */
	__u32 seed_size;        /* 4 / 8 */
	__u32 iter_map_offset;  /* hiter.h / maps.Iter.m */
	__u8 write_flag_mask;   /* hashWriting (4) / any bit (0xff) */
	__u8 pad[7];
	__u64 wake_mask;        /* wake the reader once per (wake_mask + 1) events per CPU */
	struct chan_layout chan; /* runtime.hchan */
	__u32 n_forwarders;
	__u32 site_stacks; /* send a struct stack_event for each new call site (race analysis) */
	__u32 goid_cache;  /* goroutine creation is probed: goids may be cached per CPU */
	__u32 pad2;
	struct code_range forwarders[FORWARDERS];
};

#endif
