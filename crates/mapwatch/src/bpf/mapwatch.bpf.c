// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* mapwatch's uprobe programs: one per operation class, attached to the calls to the map entry
 * points in watched code (`call rel32`, which the kernel emulates), or just after each entry
 * point's stack check (the `push rbp` the kernel emulates, instead of the entry instruction it
 * would single-step at ~10x the cost). Never a uretprobe: they crash Go.
 *
 * The hot path (every map operation) is two user-memory reads (the caller's frame, the map's
 * header), a per-CPU and an array lookup and an 80-byte ring buffer record; the goid is read
 * only when the CPU runs another goroutine than at its last hit, and a write adds a hash
 * lookup. Each user-memory read or hash lookup costs about a tenth of the uprobe itself.
 * Stacks are walked only on a conflict (the access's own, and the in-progress writer's from
 * the frame pointer it recorded) and once per new call site. */
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

/* Per map: the last writes that began on it. While the map's write flag is set, one of them is
 * in progress (every write passes through a probe before it sets the flag). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct writers);
} writers SEC(".maps");

/* Sync probe sites, indexed by attach cookie (sized and filled by the loader). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sync_site);
} sync_sites SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_states SEC(".maps");

/* Call sites (return address, caller) whose stack has been sent, so that a race's sides can
 * show the stack above the accessing line: a direct-mapped cache (an array lookup, a fraction
 * of a hash lookup's cost); a site whose slot another took is sent again, never missed. */
struct site_key {
	__u64 ret;
	__u64 caller;
};
#define SITE_SLOTS 65536
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SITE_SLOTS);
	__type(key, __u32);
	__type(value, struct site_key);
} stacked_sites SEC(".maps");

/* Per thread, in slot tid mod THREAD_SLOTS: the map operation it began last (an array lookup,
 * a fraction of task storage's cost). Threads of one process share a slot only when their tids
 * are THREAD_SLOTS apart; the tid in the slot tells them apart, so sharing can lose a map's
 * name, never give a wrong one. */
#define THREAD_SLOTS 4096
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, THREAD_SLOTS);
	__type(key, __u32);
	__type(value, struct last_op);
} last_ops SEC(".maps");

static __always_inline struct last_op *thread_slot(__u32 tid)
{
	__u32 i = tid & (THREAD_SLOTS - 1);
	return bpf_map_lookup_elem(&last_ops, &i);
}

/* Changes at every goroutine creation (once newproc1 is done), and when mapwatch switches the
 * probes back on after a pause: the only moments a g can start to stand for another goroutine.
 * A goid cached under an older epoch is read again. */
__u64 g_epoch = 0;

static __always_inline struct cpu_state *this_cpu(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&cpu_states, &zero);
}

static __always_inline __u64 read_u64(__u64 addr)
{
	__u64 v = 0;
	bpf_probe_read_user(&v, sizeof(v), (const void *)addr);
	return v;
}

/* The `size`-byte field at `off` of a copied `len`-byte header (0 if it does not fit). */
static __always_inline __u64 head_field(const __u8 *head, __u32 len, __u32 off, __u32 size)
{
	__u64 v = 0;
	if (off <= len - 8) /* for the verifier */
		__builtin_memcpy(&v, head + off, 8);
	return size == 8 ? v : v & ((1ULL << (size * 8)) - 1);
}

/* The running goroutine's id: g is in R14 in Go code. Cached per CPU while no goroutine was
 * created since it was read (a g is reused, with a new goid, only by a creation). */
static __always_inline __u64 current_goid(struct pt_regs *ctx, struct cpu_state *st)
{
	__u64 g = ctx->r14;
	if (!cfg.goid_cache)
		return read_u64(g + cfg.goid_offset);
	__u64 epoch = *(volatile __u64 *)&g_epoch;
	if (st->g == g && st->g_epoch == epoch)
		return st->goid;
	__u64 goid = read_u64(g + cfg.goid_offset);
	st->g = g;
	st->goid = goid;
	st->g_epoch = epoch; /* read before the goid: a creation since leaves the entry stale */
	return goid;
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

/* Return addresses up the frame-pointer chain from `fp` into out[first..]: Go keeps frame
 * pointers on amd64. Stops at the end of the chain or memory it cannot read. Returns the
 * entries of `out` used. */
static __always_inline __u32 walk_frames(__u64 fp, __u64 *out, const int first)
{
	__u32 n = first;
	for (int i = first; i < STACK_DEPTH; i++) {
		__u64 frame[2]; /* saved frame pointer, return address */
		if (!fp || bpf_probe_read_user(frame, sizeof(frame), (const void *)fp) || !frame[1])
			break;
		out[i] = frame[1];
		n = i + 1;
		fp = frame[0];
	}
	return n;
}

/* The writer's stack, walked now from the frame pointer it recorded. Valid while the frame
 * still holds the return address it held when the write began; if not, the writer has since
 * returned from its caller, and only the two frames recorded then are certain. */
static __always_inline __u32 writer_stack(const struct writer *w, __u64 *out)
{
	out[0] = w->ip;
	out[1] = w->ret;
	if (read_u64(w->fp + 8) != w->caller_ret) {
		out[2] = w->caller_ret;
		return w->caller_ret ? 3 : 2;
	}
	return walk_frames(w->fp, out, 2);
}

/* What a probe does besides emitting its event. */
#define CHECK_WRITER 0x1 /* look for another goroutine's write in progress */
#define IS_WRITE 0x2     /* record this access as the map's current writer */

/* The write in progress on `map` by a goroutine other than `goid`, if one is recorded: the
 * latest recorded write by another goroutine. */
static __always_inline struct writer *other_writer(__u64 map, __u64 goid)
{
	struct writers *w = bpf_map_lookup_elem(&writers, &map);
	if (!w)
		return 0;
	struct writer *latest = 0;
	for (int i = 0; i < WRITER_SLOTS; i++) {
		struct writer *s = &w->slot[i];
		if (s->op && s->goid != goid && (!latest || s->ts > latest->ts))
			latest = s;
	}
	return latest;
}

static __always_inline void remember_writer(__u64 map, const struct writer *self)
{
	struct writers *w = bpf_map_lookup_elem(&writers, &map);
	if (!w) {
		struct writers fresh = { .seq = 1, .slot[0] = *self };
		/* Another CPU's first write to the map may have just created the entry. */
		if (!bpf_map_update_elem(&writers, &map, &fresh, BPF_NOEXIST))
			return;
		w = bpf_map_lookup_elem(&writers, &map);
		if (!w)
			return;
	}
	/* A goroutine's consecutive writes share a slot: a writer stalled between its probe and
	 * setting the flag must stay recorded however many writes the other one does meanwhile. */
	__u64 seq = *(volatile __u64 *)&w->seq;
	struct writer *latest = &w->slot[(seq - 1) & (WRITER_SLOTS - 1)];
	if (latest->goid == self->goid) {
		*latest = *self;
		return;
	}
	__u64 i = __sync_fetch_and_add(&w->seq, 1);
	w->slot[i & (WRITER_SLOTS - 1)] = *self;
}

struct access {
	/* ip: in the map function (the probe, or the entry of the function a call site calls);
	 * own_ret: the return address of the map function's own frame (a forwarder's, if any);
	 * frame_ret: the return address in the frame RBP points to at the probe. */
	__u64 map, type, goid, ip, own_ret, ret, caller, fp, frame_ret, key, seed, now, pid_tgid;
	__u8 op, flags;
};

static __always_inline void fill(struct event *e, const struct access *a)
{
	e->ts = a->now;
	e->map = a->map;
	e->type = a->type;
	e->goid = a->goid;
	e->ret = a->ret;
	e->caller = a->caller;
	e->key = a->key;
	e->seed = a->seed;
	e->pid = a->pid_tgid >> 32;
	e->tid = (__u32)a->pid_tgid;
	e->cpu = (__u16)bpf_get_smp_processor_id();
	e->op = a->op;
	e->flags = a->flags;
}

/* An ordinary record. The reader polls on a timer and is woken only once per
 * cfg.wake_mask + 1 records per CPU, so it keeps up without a wake-up per event. */
static __always_inline int emit(struct cpu_state *st, const struct access *a)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		st->drops++;
		return 0;
	}
	fill(e, a);
	__u64 n = ++st->events;
	bpf_ringbuf_submit(e, (n & cfg.wake_mask) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* A conflict, with both stacks, sent at once: the Go runtime is likely to kill the target
 * right after. `ctx` is the access's probe. */
static __always_inline int emit_conflict(struct pt_regs *ctx, struct cpu_state *st,
					 const struct access *a, const struct writer *other)
{
	struct conflict_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		st->drops++;
		return 0;
	}
	fill(&e->ev, a);
	e->ev.flags |= EVENT_F_CONFLICT;
	e->other = *other;
	/* The true stack: a forwarder's frame, if any, then the frame-pointer chain. */
	e->stack[0] = a->ip;
	e->stack[1] = a->own_ret;
	e->depth = walk_frames(ctx->rbp, e->stack, 2);
	e->other_depth = writer_stack(other, e->other_stack);
	st->events++;
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* The access's call site in the caller and the caller's own return address. On a call
 * instruction, the call site is the next instruction; after the call, the probed one. In the
 * function, it is *RSP at the probe
 * (after the stack check, before `push rbp`), or, when that is inside a forwarding entry point,
 * the forwarder's own return address. Either way RBP is still the frame pointer of the
 * function that made the call, whose frame holds the next return address. */
static __always_inline void access_site(struct pt_regs *ctx, __u64 cookie, struct access *a)
{
	__u64 frame[2] = {}; /* saved frame pointer, return address */
	__u64 fp = ctx->rbp;
	bpf_probe_read_user(frame, sizeof(frame), (const void *)fp);
	a->frame_ret = frame[1];
	if (COOKIE_AT_CALL(cookie) || COOKIE_AFTER_CALL(cookie)) {
		a->ret = COOKIE_AT_CALL(cookie) ? ctx->rip + CALL_LEN : ctx->rip;
		a->own_ret = a->ret;
		a->ip = a->ret + COOKIE_CALL_REL(cookie);
		a->caller = frame[1];
		a->fp = fp;
		return;
	}
	__u64 ret = read_u64(ctx->rsp);
	a->ip = ctx->rip;
	a->own_ret = ret;
	for (int i = 0; i < FORWARDERS; i++) {
		if (i >= cfg.n_forwarders)
			break;
		if (ret >= cfg.forwarders[i].lo && ret < cfg.forwarders[i].hi) {
			ret = frame[1];
			fp = frame[0];
			bpf_probe_read_user(frame, sizeof(frame), (const void *)fp);
			break;
		}
	}
	a->ret = ret;
	a->caller = frame[1];
	a->fp = fp;
}

/* The access as a struct stack_event, if its call site's stack was not sent yet. Returns 1
 * when it sent the record (in place of the plain event). */
static __always_inline int emit_new_site(struct cpu_state *st, const struct access *a)
{
	/* Fibonacci hashing of both addresses to a slot. */
	__u32 idx = ((a->ret ^ (a->caller * 0x9e3779b97f4a7c15ULL)) * 0x9e3779b97f4a7c15ULL) >> 48;
	struct site_key *sent = bpf_map_lookup_elem(&stacked_sites, &idx);
	if (!sent)
		return 0;
	if (sent->ret == a->ret && sent->caller == a->caller)
		return 0;
	/* Two CPUs may both send a new site: the reader keeps one. */
	sent->ret = a->ret;
	sent->caller = a->caller;
	struct stack_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		st->drops++;
		return 1;
	}
	fill(&e->ev, a);
	e->ev.flags |= EVENT_F_STACK;
	e->stack[0] = a->ret;
	e->depth = walk_frames(a->fp, e->stack, 1);
	__u64 n = ++st->events;
	bpf_ringbuf_submit(e, (n & cfg.wake_mask) ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP);
	return 1;
}

static __always_inline int record(struct pt_regs *ctx, __u64 map, __u64 type, unsigned int what)
{
	struct cpu_state *st = this_cpu();
	if (!st)
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct access a = {
		.map = map,
		.type = type,
		.goid = current_goid(ctx, st),
		.key = read_key(ctx, COOKIE_KEY_MODE(cookie)),
		.now = bpf_ktime_get_ns(),
		.pid_tgid = bpf_get_current_pid_tgid(),
		.op = COOKIE_OP(cookie),
	};
	access_site(ctx, cookie, &a);
	st->ops[a.op & (OP_SLOTS - 1)]++;
	struct last_op *last = thread_slot((__u32)a.pid_tgid);
	if (last) {
		last->map = map;
		last->ret = a.ret;
		last->tid = (__u32)a.pid_tgid;
		last->op = a.op;
	}
	if (!map)
		return emit(st, &a);

	/* One read of the header for the seed and the write flag (the loader checked both lie
	 * in it). */
	__u8 head[MAP_HEAD] = {};
	bpf_probe_read_user(head, sizeof(head), (const void *)map);
	a.seed = head_field(head, MAP_HEAD, cfg.seed_offset, cfg.seed_size);
	struct writer partner;
	int found = 0;
	if (what & CHECK_WRITER) {
		if (head_field(head, MAP_HEAD, cfg.write_flag_offset, 1) & cfg.write_flag_mask) {
			a.flags |= EVENT_F_WRITING;
			struct writer *w = other_writer(map, a.goid);
			if (w) {
				partner = *w; /* copied before our own update replaces it */
				found = 1;
			}
		}
	}
	if (what & IS_WRITE) {
		struct writer self = {
			.goid = a.goid,
			.ip = a.ip,
			.ret = a.ret,
			.fp = ctx->rbp,
			.caller_ret = a.frame_ret,
			.ts = a.now,
			.tid = (__u32)a.pid_tgid,
			.op = a.op,
		};
		remember_writer(map, &self);
	}
	if (found)
		return emit_conflict(ctx, st, &a, &partner);
	if (cfg.site_stacks && a.op != OP_MAKE && emit_new_site(st, &a))
		return 0;
	return emit(st, &a);
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
	return record(ctx, ctx->rbx, ctx->rax, CHECK_WRITER | IS_WRITE);
}

/* mapiterinit / mapIterStart: (type AX, map BX, iterator CX) */
SEC("uprobe")
int on_iter_start(struct pt_regs *ctx)
{
	return record(ctx, ctx->rbx, ctx->rax, CHECK_WRITER);
}

/* mapiternext / mapIterNext: (iterator AX); the iterator holds the map. */
SEC("uprobe")
int on_iter_next(struct pt_regs *ctx)
{
	__u64 map = read_u64(ctx->rax + cfg.iter_map_offset);
	return record(ctx, map, 0, CHECK_WRITER);
}

/* makemap / makemap_small, at each RET or where a watched call to one returns: the new map
 * in AX. */
SEC("uprobe")
int on_make_return(struct pt_regs *ctx)
{
	return record(ctx, ctx->rax, 0, 0);
}

/* maps.clone's RETs, or where a watched call to it returns: the clone, returned as `any`, is
 * its data word (BX). */
SEC("uprobe")
int on_clone_return(struct pt_regs *ctx)
{
	return record(ctx, ctx->rbx, 0, 0);
}

/* Whether return address `ret` is in the first frames of the stack at a function's entry
 * probe: the runtime stops an operation a few calls deep, and the thread's last recorded
 * operation is not it when the failing one was not watched. */
static __always_inline int on_stack(struct pt_regs *ctx, __u64 ret)
{
	if (read_u64(ctx->rsp) == ret)
		return 1;
	__u64 fp = ctx->rbp;
	for (int i = 0; i < 8; i++) {
		__u64 frame[2];
		if (!fp || bpf_probe_read_user(frame, sizeof(frame), (const void *)fp))
			return 0;
		if (frame[1] == ret)
			return 1;
		fp = frame[0];
	}
	return 0;
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

	struct cpu_state *st = this_cpu();
	if (!st)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct last_op *last = thread_slot((__u32)pid_tgid);
	if (!last || last->tid != (__u32)pid_tgid || !last->map || !on_stack(ctx, last->ret))
		return 0;
	__u64 map = last->map;
	last->map = 0; /* report once: maps.fatal calls runtime.fatal, and both may be probed */
	struct access a = {
		.map = map,
		.goid = read_u64(ctx->r14 + cfg.goid_offset),
		.ip = ctx->rip,
		.own_ret = read_u64(ctx->rsp),
		.ret = read_u64(ctx->rsp),
		.now = bpf_ktime_get_ns(),
		.pid_tgid = pid_tgid,
		.op = last->op,
		.flags = EVENT_F_RUNTIME,
	};
	struct writer *found = other_writer(map, a.goid);
	if (!found) {
		emit(st, &a);
		return 0;
	}
	struct writer partner = *found;
	return emit_conflict(ctx, st, &a, &partner);
}

/* A register by number (enum reg). The registers are copied to the stack first: a switch over
 * ctx fields compiles to a variable offset into ctx, which the verifier refuses. */
static __always_inline __u64 reg_value(struct pt_regs *ctx, __u8 r)
{
	__u64 regs[16] = {
		ctx->rax, ctx->rbx, ctx->rcx, ctx->rdx, ctx->rsi, ctx->rdi, ctx->rbp, ctx->rsp,
		ctx->r8,  ctx->r9,  ctx->r10, ctx->r11, ctx->r12, ctx->r13, ctx->r14, ctx->r15,
	};
	return regs[r & 15];
}

/* Bytes of runtime.hchan read at once: every field used lies in them (Go 1.21-1.27: the wait
 * queues end by 88; the struct is 96-112 bytes). One user-memory read instead of eight: each
 * costs ~0.1 us here. */
#define CHAN_HEAD 96

/* Whether every field read lies in the CHAN_HEAD bytes copied (a layout of some later Go
 * release may not: then no state is reported). */
static __always_inline int chan_layout_fits(void)
{
	const __u32 last = CHAN_HEAD - 8;
	return cfg.chan.qcount <= last && cfg.chan.dataqsiz <= last && cfg.chan.elemsize <= last &&
	       cfg.chan.closed <= last && cfg.chan.sendx <= last && cfg.chan.recvx <= last &&
	       cfg.chan.recvq_first <= last && cfg.chan.sendq_first <= last;
}


/* The state of channel `c`, whose lock the probed code holds (so it is exact), into the
 * record: which buffer slot the operation uses follows from it (event.h, EVENT_F_CHAN_*). */
static __always_inline void read_chan_state(struct access *a, __u64 c)
{
	__u8 head[CHAN_HEAD];
	if (!chan_layout_fits() || bpf_probe_read_user(head, sizeof(head), (const void *)c))
		return;
	__u64 qcount = head_field(head, CHAN_HEAD, cfg.chan.qcount, 8);
	__u64 cap = head_field(head, CHAN_HEAD, cfg.chan.dataqsiz, 8);
	__u64 sendx = head_field(head, CHAN_HEAD, cfg.chan.sendx, 8);
	__u64 recvx = head_field(head, CHAN_HEAD, cfg.chan.recvx, 8);
	/* Out of range: no state, and the detector orders the operation with every other on the
	 * channel. */
	if (cap >> 32 || qcount > cap || (cap && (sendx >= cap || recvx >= cap)))
		return;
	a->type = qcount | (cap << 32);
	a->key = sendx | (recvx << 32);
	a->flags = EVENT_F_CHAN_STATE;
	if (head_field(head, CHAN_HEAD, cfg.chan.closed, 4))
		a->flags |= EVENT_F_CHAN_CLOSED;
	if (head_field(head, CHAN_HEAD, cfg.chan.recvq_first, 8))
		a->flags |= EVENT_F_CHAN_RECVQ;
	if (head_field(head, CHAN_HEAD, cfg.chan.sendq_first, 8))
		a->flags |= EVENT_F_CHAN_SENDQ;
	if (!head_field(head, CHAN_HEAD, cfg.chan.elemsize, 2))
		a->flags |= EVENT_F_CHAN_ZERO;
}

/* A synchronisation operation: a happens-before edge for the race detector. One program for
 * all of them (two attachments: on_sync, on_sync_stepped); the site (cookie) says which
 * operation it is and where its object is. */
static __always_inline int sync_op(struct pt_regs *ctx)
{
	__u32 idx = (__u32)bpf_get_attach_cookie(ctx);
	struct sync_site *s = bpf_map_lookup_elem(&sync_sites, &idx);
	struct cpu_state *st = this_cpu();
	if (!s || !st)
		return 0;
	st->sync++;
	struct access a = {
		/* R14 is g0 at the probes on the system stack: the case below names the goroutine. */
		.goid = s->form == ADDR_NEW_G || s->form == ADDR_CORO ? 0 : current_goid(ctx, st),
		.ret = s->at_call ? read_u64(ctx->rsp) : ctx->rip,
		.now = bpf_ktime_get_ns(),
		.pid_tgid = bpf_get_current_pid_tgid(),
		.op = s->kind,
	};
	switch (s->form) {
	case ADDR_REGS:
		a.map = reg_value(ctx, s->base) + s->disp;
		if (s->index != REG_NONE)
			a.map += reg_value(ctx, s->index) * s->scale;
		break;
	case ADDR_FROM_PROBE:
		a.map = ctx->rip + s->disp;
		break;
	case ADDR_LOADED:
		a.map = read_u64(reg_value(ctx, s->base) + s->slot);
		if (a.map)
			a.map += s->disp;
		break;
	case ADDR_NEW_G: {
		/* On the system stack (R14 is g0): the new g names both goroutines. It may be a
		 * reused g: goids cached for it are stale from now on. */
		__u64 newg = reg_value(ctx, s->base);
		__sync_fetch_and_add(&g_epoch, 1);
		a.goid = read_u64(newg + cfg.parent_goid_offset);
		a.key = read_u64(newg + cfg.goid_offset);
		break;
	}
	case ADDR_CORO: {
		/* On the system stack too: the switching g names the goroutine. */
		__u64 g = reg_value(ctx, s->base);
		a.goid = read_u64(g + cfg.goid_offset);
		a.map = read_u64(g + s->slot);
		__u64 resumed = a.map ? read_u64(a.map) : 0; /* coro.gp */
		a.key = resumed ? read_u64(resumed + cfg.goid_offset) : 0;
		break;
	}
	case ADDR_SELECT: {
		__u64 n = ctx->rdi + ctx->rsi;
		for (int i = 0; i < SELECT_CASES; i++) {
			if (i >= n)
				break;
			a.map = read_u64(ctx->rax + 16 * i); /* scase.c */
			if (a.map)
				emit(st, &a);
		}
		if (n > SELECT_CASES) {
			/* Channels past the ones reported: an unknown object, which the detector
			 * lets synchronise with everything (never a missed edge). */
			a.map = 0;
			emit(st, &a);
		}
		return 0;
	}
	default: /* ADDR_UNKNOWN, ADDR_NONE */
		break;
	}
	if (s->chan_state && a.map)
		read_chan_state(&a, a.map);
	return emit(st, &a);
}

SEC("uprobe")
int on_sync(struct pt_regs *ctx)
{
	return sync_op(ctx);
}

/* The same on instructions the kernel single-steps: its own program, so that the kernel's
 * per-program statistics count the dearer hits apart (an overhead budget weighs them). */
SEC("uprobe")
int on_sync_stepped(struct pt_regs *ctx)
{
	return sync_op(ctx);
}

/* Does nothing: the benchmark's measure of what the kernel's uprobe itself costs. */
SEC("uprobe")
int on_nothing(struct pt_regs *ctx)
{
	return 0;
}
