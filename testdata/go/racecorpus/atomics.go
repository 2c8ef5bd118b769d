// sync/atomic as real code uses it to publish maps: typed atomics (Bool, Int32, Int64, Uint32,
// Uint64, Uintptr, Pointer, Value) and the function forms (AddInt64/LoadInt64, StoreInt32/
// LoadInt32, CompareAndSwapInt32, SwapInt64). A store (or add, swap, successful CAS) happens
// before the load that observes it; a write after the store is not ordered by it.
package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// spin polls cond until it holds.
func spin(cond func() bool) {
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

// atomicBoolReady: the loader fills the map, then sets the flag; the reader polls the flag.
func atomicBoolReady() {
	m := make(map[string]int)
	var ready atomic.Bool
	go func() {
		m["a"] = 1
		m["b"] = 2
		ready.Store(true)
	}()
	spin(ready.Load)
	_ = m["a"]
	m["c"] = 3
}

// atomicBoolSetEarly: the loader sets the flag before its last write.
func atomicBoolSetEarly() {
	m := make(map[string]int)
	var ready atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		m["a"] = 1
		ready.Store(true)
		pause()
		m["b"] = 2 // race:atomic_bool_set_early
	}()
	spin(ready.Load)
	_, _ = m["b"] // race:atomic_bool_set_early
	<-done
}

// Loader states.
const (
	idle int32 = iota
	loading
	loaded
)

// atomicInt32State: the reader waits for the loaded state.
func atomicInt32State() {
	m := make(map[string]int)
	var state atomic.Int32
	go func() {
		state.Store(loading)
		m["a"] = 1
		state.Store(loaded)
	}()
	spin(func() bool { return state.Load() == loaded })
	_ = m["a"]
}

// atomicInt32WrongState: the reader waits only for the state to leave idle: loading is not loaded.
func atomicInt32WrongState() {
	m := make(map[string]int)
	var state atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		state.Store(loading)
		pause()
		m["a"] = 1 // race:atomic_int32_wrong_state
		state.Store(loaded)
	}()
	spin(func() bool { return state.Load() != idle })
	_, _ = m["a"] // race:atomic_int32_wrong_state
	<-done
}

// atomicInt64Done: each worker fills its part, then counts itself done; the parent polls the count.
func atomicInt64Done() {
	parts := []map[int]int{make(map[int]int), make(map[int]int)}
	var done atomic.Int64
	for _, part := range parts {
		go func(part map[int]int) {
			fill(part)
			done.Add(1)
		}(part)
	}
	spin(func() bool { return done.Load() == int64(len(parts)) })
	total := 0
	for _, part := range parts {
		total += part[3]
	}
}

// atomicInt64CountedAtStart: each worker counts itself when it starts, not when it is done.
func atomicInt64CountedAtStart() {
	parts := []map[int]int{make(map[int]int), make(map[int]int)}
	var started atomic.Int64
	var wg sync.WaitGroup
	for _, part := range parts {
		wg.Add(1)
		go func(part map[int]int) {
			defer wg.Done()
			started.Add(1)
			pause()
			part[3] = 9 // race:atomic_int64_counted_at_start
		}(part)
	}
	spin(func() bool { return started.Load() == int64(len(parts)) })
	total := 0
	for _, part := range parts {
		v, _ := part[3] // race:atomic_int64_counted_at_start
		total += v
	}
	wg.Wait()
}

// atomicUint64Generation: the writer rebuilds the table then bumps the generation; the reader
// waits for a new generation before reading.
func atomicUint64Generation() {
	table := make(map[string]int)
	var gen atomic.Uint64
	go func() {
		table["a"] = 1
		gen.Add(1)
	}()
	spin(func() bool { return gen.Load() > 0 })
	_ = table["a"]
}

// atomicUint64BumpFirst: the writer bumps the generation, then rebuilds.
func atomicUint64BumpFirst() {
	table := make(map[string]int)
	var gen atomic.Uint64
	done := make(chan struct{})
	go func() {
		defer close(done)
		gen.Add(1)
		pause()
		table["a"] = 1 // race:atomic_uint64_bump_first
	}()
	spin(func() bool { return gen.Load() > 0 })
	_, _ = table["a"] // race:atomic_uint64_bump_first
	<-done
}

// atomicUint32Closed: a closed flag (0 or 1) in a Uint32, set by CompareAndSwap after the final
// stats are written.
func atomicUint32Closed() {
	stats := make(map[string]int)
	var closed atomic.Uint32
	go func() {
		stats["flushed"] = 1
		closed.CompareAndSwap(0, 1)
	}()
	spin(func() bool { return closed.Load() == 1 })
	_ = stats["flushed"]
}

// atomicUint32ClosedBeforeFlush: the flag is set before the final stats are written.
func atomicUint32ClosedBeforeFlush() {
	stats := make(map[string]int)
	var closed atomic.Uint32
	done := make(chan struct{})
	go func() {
		defer close(done)
		closed.CompareAndSwap(0, 1)
		pause()
		stats["flushed"] = 1 // race:atomic_uint32_closed_before_flush
	}()
	spin(func() bool { return closed.Load() == 1 })
	_, _ = stats["flushed"] // race:atomic_uint32_closed_before_flush
	<-done
}

// atomicUintptrCount: the writer publishes how many entries are ready in a Uintptr.
func atomicUintptrCount() {
	m := make(map[int]int)
	var ready atomic.Uintptr
	go func() {
		fill(m)
		ready.Store(uintptr(len(m)))
	}()
	spin(func() bool { return ready.Load() > 0 })
	_ = m[7]
}

// atomicUintptrCountEarly: the count is published before the entries are written.
func atomicUintptrCountEarly() {
	m := make(map[int]int)
	var ready atomic.Uintptr
	done := make(chan struct{})
	go func() {
		defer close(done)
		ready.Store(8)
		pause()
		m[7] = 49 // race:atomic_uintptr_count_early
	}()
	spin(func() bool { return ready.Load() > 0 })
	_, _ = m[7] // race:atomic_uintptr_count_early
	<-done
}

// atomicPointerCopyOnWrite: a config map behind atomic.Pointer: the writer copies, changes the
// copy and swaps it in; readers only read what they load.
func atomicPointerCopyOnWrite() {
	var cfg atomic.Pointer[map[string]int]
	initial := map[string]int{"limit": 10}
	cfg.Store(&initial)
	set := func(key string, v int) {
		old := *cfg.Load()
		next := make(map[string]int, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[key] = v
		cfg.Store(&next)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = (*cfg.Load())["limit"]
	}()
	pause()
	set("limit", 20)
	_ = (*cfg.Load())["limit"]
	<-done
}

// atomicPointerMutateLoaded: the writer changes the loaded map in place instead of a copy.
func atomicPointerMutateLoaded() {
	var cfg atomic.Pointer[map[string]int]
	initial := map[string]int{"limit": 10}
	cfg.Store(&initial)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = (*cfg.Load())["limit"] // race:atomic_pointer_mutate_loaded
	}()
	pause()
	(*cfg.Load())["limit"] = 20 // race:atomic_pointer_mutate_loaded
	<-done
}

// serverConfig is published through an atomic.Value.
type serverConfig struct {
	name   string
	limits map[string]int
}

// atomicValueReload: a reload builds a fresh config, limits map included.
func atomicValueReload() {
	var current atomic.Value
	current.Store(&serverConfig{name: "a", limits: map[string]int{"conn": 10}})
	reload := func(key string, v int) {
		old := current.Load().(*serverConfig)
		next := &serverConfig{name: old.name, limits: make(map[string]int, len(old.limits))}
		for k, v := range old.limits {
			next.limits[k] = v
		}
		next.limits[key] = v
		current.Store(next)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = current.Load().(*serverConfig).limits["conn"]
	}()
	pause()
	reload("conn", 20)
	<-done
}

// atomicValueShallowCopy: the reload copies the config struct, which shares the limits map with
// the published one, and changes the shared map.
func atomicValueShallowCopy() {
	var current atomic.Value
	current.Store(&serverConfig{name: "a", limits: map[string]int{"conn": 10}})
	reload := func(key string, v int) {
		next := *current.Load().(*serverConfig)
		next.limits[key] = v // race:atomic_value_shallow_copy
		current.Store(&next)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = current.Load().(*serverConfig).limits["conn"] // race:atomic_value_shallow_copy
	}()
	pause()
	reload("conn", 20)
	<-done
}

// addInt64Done: workers fill their parts and count themselves done with AddInt64; the parent polls
// LoadInt64.
func addInt64Done() {
	parts := []map[int]int{make(map[int]int), make(map[int]int)}
	var done int64
	for _, part := range parts {
		go func(part map[int]int) {
			defer atomic.AddInt64(&done, 1)
			fill(part)
		}(part)
	}
	for atomic.LoadInt64(&done) < int64(len(parts)) {
		time.Sleep(time.Millisecond)
	}
	for _, part := range parts {
		_ = part[5]
	}
}

// addInt64WriteAfterDone: a worker records its elapsed time after counting itself done.
func addInt64WriteAfterDone() {
	elapsed := make(map[int]int)
	var done int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		atomic.AddInt64(&done, 1)
		pause()
		elapsed[0] = 1 // race:add_int64_write_after_done
	}()
	for atomic.LoadInt64(&done) < 1 {
		time.Sleep(time.Millisecond)
	}
	_, _ = elapsed[0] // race:add_int64_write_after_done
	wg.Wait()
}

// storeInt32Flag: the loader stores 1 with StoreInt32 after filling; the reader waits on LoadInt32.
func storeInt32Flag() {
	m := make(map[string]int)
	var loaded int32
	go func() {
		m["a"] = 1
		atomic.StoreInt32(&loaded, 1)
	}()
	for atomic.LoadInt32(&loaded) == 0 {
		time.Sleep(time.Millisecond)
	}
	_ = m["a"]
}

// storeInt32ReadBeforeCheck: the reader reads the map first and checks the flag afterwards.
func storeInt32ReadBeforeCheck() {
	m := make(map[string]int)
	var loaded int32
	go func() {
		pause()
		m["a"] = 1 // race:store_int32_read_before_check
		atomic.StoreInt32(&loaded, 1)
	}()
	v, ok := m["a"] // race:store_int32_read_before_check
	for atomic.LoadInt32(&loaded) == 0 {
		time.Sleep(time.Millisecond)
	}
	_, _ = v, ok
}

// claimTable is loaded by whoever claims it first with CompareAndSwapInt32; the others wait for
// the loaded flag.
type claimTable struct {
	claimed int32
	loaded  int32
	m       map[string]int
}

func (t *claimTable) get(load func(map[string]int)) map[string]int {
	if atomic.CompareAndSwapInt32(&t.claimed, 0, 1) {
		load(t.m)
		atomic.StoreInt32(&t.loaded, 1)
		return t.m
	}
	for atomic.LoadInt32(&t.loaded) == 0 {
		time.Sleep(time.Millisecond)
	}
	return t.m
}

// casClaim: one goroutine claims and loads; the other loses the claim and waits for the load.
func casClaim() {
	t := &claimTable{m: make(map[string]int)}
	loading := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.get(func(m map[string]int) {
			close(loading)
			pause()
			m["a"] = 1
		})
	}()
	<-loading
	_ = t.get(nil)["a"]
	<-done
}

// claimOnce is claimTable without the loaded flag: losing the claim is taken to mean loaded.
type claimOnce struct {
	claimed int32
	m       map[string]int
}

func (t *claimOnce) get(load func(map[string]int)) map[string]int {
	if atomic.CompareAndSwapInt32(&t.claimed, 0, 1) {
		load(t.m)
	}
	return t.m
}

// casClaimNoWait: the loser reads while the winner is still loading.
func casClaimNoWait() {
	t := &claimOnce{m: make(map[string]int)}
	loading := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.get(func(m map[string]int) {
			close(loading)
			pause()
			m["a"] = 1 // race:cas_claim_no_wait
		})
	}()
	<-loading
	_, _ = t.get(nil)["a"] // race:cas_claim_no_wait
	<-done
}

// swapInt64Pending: the producer adds an entry, then counts it pending; the consumer takes the
// pending count with SwapInt64 and reads the entries.
func swapInt64Pending() {
	queue := make(map[int]int)
	var pending int64
	go func() {
		queue[1] = 10
		atomic.AddInt64(&pending, 1)
	}()
	for atomic.SwapInt64(&pending, 0) == 0 {
		time.Sleep(time.Millisecond)
	}
	_ = queue[1]
	delete(queue, 1)
}

// swapInt64CountFirst: the producer counts the entry pending before adding it.
func swapInt64CountFirst() {
	queue := make(map[int]int)
	var pending int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		atomic.AddInt64(&pending, 1)
		pause()
		queue[1] = 10 // race:swap_int64_count_first
	}()
	for atomic.SwapInt64(&pending, 0) == 0 {
		time.Sleep(time.Millisecond)
	}
	_, _ = queue[1] // race:swap_int64_count_first
	<-done
}
