/* Records shared by the BPF programs (mapwatch.bpf.c) and their reader (src/event.rs).
 * Layouts are mirrored by #[repr(C)] structs in Rust: change both together. */
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

/* How the key is passed, per probe (carried in the attach cookie). */
enum key_mode {
	KEY_NONE = 0,  /* clear, iterate, make */
	KEY_VALUE = 1, /* fast32/fast64/fast64ptr: the key itself in CX */
	KEY_STRING = 2, /* faststr: CX = data, DI = len; first 8 bytes kept */
	KEY_INDIRECT = 3, /* generic/fat: CX points at the key; first 8 bytes kept */
};

/* Attach cookie: op in bits 0-7, key mode in bits 8-15. */
#define COOKIE_OP(c) ((__u8)((c) & 0xff))
#define COOKIE_KEY_MODE(c) ((__u8)(((c) >> 8) & 0xff))

#define EVENT_F_WRITING 0x01  /* the map's write-in-progress flag was set at this access */
#define EVENT_F_CONFLICT 0x02 /* ...by another goroutine: the record is a struct conflict_event */
#define EVENT_F_RUNTIME 0x04  /* the Go runtime itself detected it (it is about to kill the target) */

/* One map operation, 64 bytes. */
struct event {
	__u64 ts;     /* bpf_ktime_get_ns */
	__u64 map;    /* map header pointer (hmap / maps.Map) */
	__u64 type;   /* map type descriptor pointer, 0 where the op has none */
	__u64 goid;
	__u64 ret;    /* return address: the direct caller, *(u64 *)RSP */
	__u64 key;    /* the key (fast variants) or its first 8 bytes */
	__u32 pid;
	__u32 tid;
	__s32 stack_id; /* user stack in the `stacks` map, < 0 when not taken */
	__u16 cpu;
	__u8 op;
	__u8 flags;
};

/* The write in progress on a map, as last recorded at a write's entry. */
struct writer {
	__u64 goid;
	__u64 ret;
	__u64 ts;
	__s32 stack_id;
	__u32 tid;
	__u8 op;
	__u8 pad[7];
};

/* A map's two most recent writers from different goroutines: when the current one is the
 * goroutine asking, the write in progress is the previous one's. */
struct writers {
	struct writer cur;
	struct writer prev;
};

/* The last map operation begun on a CPU, for the runtime's fatal error to name its map. */
struct last_op {
	__u64 map;
	__u32 tid;
	__u8 op;
	__u8 pad[3];
};

/* An access that found another goroutine's write in progress on the same map. */
struct conflict_event {
	struct event ev;
	struct writer other;
};

/* Read-only configuration, set before load from the target's offsets. */
struct config {
	__u32 goid_offset;      /* runtime.g.goid */
	__u32 write_flag_offset; /* hmap.flags / maps.Map.writing */
	__u32 iter_map_offset;  /* hiter.h / maps.Iter.m */
	__u8 write_flag_mask;   /* hashWriting (4) / any bit (0xff) */
	__u8 pad[3];
	__u64 wake_bytes;       /* wake the reader only once this much is pending */
};

#endif
