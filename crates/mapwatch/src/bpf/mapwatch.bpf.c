// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* mapwatch's uprobe programs: one per operation class, attached just after each map entry
 * point's stack check (the `push rbp` the kernel emulates, ~0.5 us, instead of the entry
 * instruction it would single-step, ~16 us). Never a uretprobe: they crash Go. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include "event.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct config cfg = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* User stacks of writes and of conflicting accesses (reads take none: they are the hot path). */
#define STACK_DEPTH 64
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, STACK_DEPTH * sizeof(__u64));
	__uint(max_entries, 16384);
} stacks SEC(".maps");

/* Per map: the last write that began on it. While the map's write flag is set, that write is
 * the one in progress (every write passes through a probe before it sets the flag). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct writers);
} writers SEC(".maps");

/* Per CPU: the last map operation begun there, so a probe on the runtime's fatal error (same
 * thread, moments later) knows which map it is about. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct last_op);
} last_ops SEC(".maps");

/* Per-CPU counters: operations by op, and records lost to a full ring buffer. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OP_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} op_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

static __always_inline void count(void *counters, __u32 index)
{
	__u64 *n = bpf_map_lookup_elem(counters, &index);
	if (n)
		*n += 1;
}

static __always_inline __u64 read_u64(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

static __always_inline __u64 read_key(struct pt_regs *ctx, __u8 mode)
{
	switch (mode) {
	case KEY_VALUE:
		return ctx->rcx;
	case KEY_STRING:
	case KEY_INDIRECT:
		return read_u64(ctx->rcx);
	default:
		return 0;
	}
}

/* Lazy wake-up: the reader polls on a timer, so it is woken only when a lot is pending,
 * or at once for a conflict (the Go runtime is likely to kill the target right after). */
static __always_inline __u64 wake_flags(int urgent)
{
	if (urgent)
		return BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg.wake_bytes)
		return 0;
	return BPF_RB_NO_WAKEUP;
}

/* What a probe does besides emitting its event. */
#define CHECK_WRITER 0x1 /* look for another goroutine's write in progress */
#define IS_WRITE 0x2     /* record this access as the map's current writer */
#define WANT_STACK 0x4   /* take the user stack even without a conflict */

/* The write in progress on `map` by a goroutine other than `goid`, if one is recorded. */
static __always_inline struct writer *other_writer(__u64 map, __u64 goid)
{
	struct writers *w = bpf_map_lookup_elem(&writers, &map);
	if (!w)
		return 0;
	if (w->cur.goid != goid)
		return &w->cur;
	if (w->prev.op && w->prev.goid != goid)
		return &w->prev;
	return 0;
}

static __always_inline void remember_writer(__u64 map, struct writer *self)
{
	struct writers *w = bpf_map_lookup_elem(&writers, &map);
	if (!w) {
		struct writers fresh = { .cur = *self };
		bpf_map_update_elem(&writers, &map, &fresh, BPF_ANY);
		return;
	}
	if (w->cur.goid != self->goid)
		w->prev = w->cur;
	w->cur = *self;
}

struct access {
	__u64 map, type, goid, ret, key, now, pid_tgid;
	__s32 stack_id;
	__u8 op, flags;
};

static __always_inline int emit(struct access *a, struct writer *other)
{
	struct event *e;
	if (other)
		e = bpf_ringbuf_reserve(&events, sizeof(struct conflict_event), 0);
	else
		e = bpf_ringbuf_reserve(&events, sizeof(struct event), 0);
	if (!e) {
		count(&drops, 0);
		return 0;
	}
	e->ts = a->now;
	e->map = a->map;
	e->type = a->type;
	e->goid = a->goid;
	e->ret = a->ret;
	e->key = a->key;
	e->pid = a->pid_tgid >> 32;
	e->tid = (__u32)a->pid_tgid;
	e->stack_id = a->stack_id;
	e->cpu = (__u16)bpf_get_smp_processor_id();
	e->op = a->op;
	e->flags = a->flags;
	if (other) {
		e->flags |= EVENT_F_CONFLICT;
		((struct conflict_event *)e)->other = *other;
	}
	bpf_ringbuf_submit(e, wake_flags(other != 0));
	return 0;
}

static __always_inline int record(struct pt_regs *ctx, __u64 map, __u64 type, unsigned int what)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct access a = {
		.map = map,
		.type = type,
		.goid = read_u64(ctx->r14 + cfg.goid_offset),
		.ret = read_u64(ctx->rsp),
		.key = read_key(ctx, COOKIE_KEY_MODE(cookie)),
		.now = bpf_ktime_get_ns(),
		.pid_tgid = bpf_get_current_pid_tgid(),
		.stack_id = -1,
		.op = COOKIE_OP(cookie),
	};
	struct writer *found = 0;
	struct writer partner = {};

	count(&op_counts, a.op);
	__u32 zero = 0;
	struct last_op *last = bpf_map_lookup_elem(&last_ops, &zero);
	if (last) {
		last->map = map;
		last->tid = (__u32)a.pid_tgid;
		last->op = a.op;
	}

	if ((what & CHECK_WRITER) && map) {
		__u8 flag = 0;
		bpf_probe_read_user(&flag, sizeof(flag), (const void *)(map + cfg.write_flag_offset));
		if (flag & cfg.write_flag_mask) {
			a.flags |= EVENT_F_WRITING;
			found = other_writer(map, a.goid);
			if (found)
				partner = *found; /* copied before our own update replaces it */
		}
	}

	if ((what & WANT_STACK) || found)
		a.stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);

	if ((what & IS_WRITE) && map) {
		struct writer self = {
			.goid = a.goid,
			.ret = a.ret,
			.ts = a.now,
			.stack_id = a.stack_id,
			.tid = (__u32)a.pid_tgid,
			.op = a.op,
		};
		remember_writer(map, &self);
	}
	return emit(&a, found ? &partner : 0);
}

/* mapaccess1/2*: (type AX, map BX, key CX[, DI]) */
SEC("uprobe")
int on_read(struct pt_regs *ctx)
{
	return record(ctx, ctx->rbx, ctx->rax, CHECK_WRITER);
}

/* mapassign*, mapdelete*, mapclear: (type AX, map BX, ...) */
SEC("uprobe")
int on_write(struct pt_regs *ctx)
{
	return record(ctx, ctx->rbx, ctx->rax, CHECK_WRITER | IS_WRITE | WANT_STACK);
}

/* mapiterinit / mapIterStart: (type AX, map BX, iterator CX) */
SEC("uprobe")
int on_iter_start(struct pt_regs *ctx)
{
	return record(ctx, ctx->rbx, ctx->rax, CHECK_WRITER | WANT_STACK);
}

/* mapiternext / mapIterNext: (iterator AX); the iterator holds the map. */
SEC("uprobe")
int on_iter_next(struct pt_regs *ctx)
{
	__u64 map = read_u64(ctx->rax + cfg.iter_map_offset);
	return record(ctx, map, 0, CHECK_WRITER);
}

/* makemap / makemap_small, at each RET: the new map in AX, its creator at *RSP. */
SEC("uprobe")
int on_make_return(struct pt_regs *ctx)
{
	return record(ctx, ctx->rax, 0, WANT_STACK);
}

/* The runtime's fatal error (runtime.fatal, or internal/runtime/maps.fatal on Swiss maps):
 * (message AX, length BX). When it is a map conflict the runtime found ("concurrent map
 * writes", "... read and map write", "... iteration and map write"), report this goroutine and
 * the map's other writer before the runtime kills the process: Go prints only one side. */
SEC("uprobe")
int on_fatal(struct pt_regs *ctx)
{
	static const char prefix[] = "concurrent map";
	char msg[sizeof(prefix) - 1] = {};
	if (ctx->rbx < sizeof(msg) || bpf_probe_read_user(msg, sizeof(msg), (const void *)ctx->rax))
		return 0;
	for (int i = 0; i < sizeof(msg); i++)
		if (msg[i] != prefix[i])
			return 0;

	__u32 zero = 0;
	struct last_op *last = bpf_map_lookup_elem(&last_ops, &zero);
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (!last || last->tid != (__u32)pid_tgid || !last->map)
		return 0; /* the thread moved CPU since its map call: nothing reliable to say */
	__u64 map = last->map;
	last->map = 0; /* report once: maps.fatal calls runtime.fatal, and both may be probed */
	struct access a = {
		.map = map,
		.goid = read_u64(ctx->r14 + cfg.goid_offset),
		.ret = read_u64(ctx->rsp),
		.now = bpf_ktime_get_ns(),
		.pid_tgid = pid_tgid,
		.op = last->op,
		.flags = EVENT_F_RUNTIME,
	};
	a.stack_id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);
	struct writer *found = other_writer(a.map, a.goid);
	struct writer partner = {};
	if (!found)
		return emit(&a, 0);
	partner = *found;
	return emit(&a, &partner);
}
