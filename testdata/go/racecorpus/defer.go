// Deferred unlocks as real code writes them: `Lock(); defer Unlock()` in small methods (open-coded
// defers), a defer inside a loop (a heap-allocated defer record), unlocks through sync.Locker and
// through method values, RUnlock deferred in closures, an unlock that runs while a panic unwinds,
// and a lock taken inside a deferred closure.
package main

import (
	"errors"
	"sync"
)

// counters is a mutex-guarded map whose methods lock and defer the unlock.
type counters struct {
	mu sync.Mutex
	m  map[string]int
}

func newCounters() *counters { return &counters{m: make(map[string]int)} }

func (c *counters) inc(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key]++
}

func (c *counters) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

// deferUnlockMethod: a writer and a later reader, both through methods with a deferred Unlock.
func deferUnlockMethod() {
	c := newCounters()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.inc("a")
		c.inc("b")
	}()
	pause()
	_ = c.get("a")
	c.inc("a")
	<-done
}

// hits is counters with a getter that forgot the lock.
type hits struct {
	mu sync.Mutex
	m  map[string]int
}

func (h *hits) inc(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.m[key]++ // race:defer_unlock_method_unlocked_get
}

func (h *hits) get(key string) int {
	return h.m[key] // race:defer_unlock_method_unlocked_get
}

// deferUnlockMethodUnlockedGet: the writer locks with a deferred unlock; the getter does not lock.
func deferUnlockMethodUnlockedGet() {
	h := &hits{m: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.inc("a")
	}()
	pause()
	_ = h.get("a")
	<-done
}

// store is an RWMutex-guarded map: writers Lock, readers RLock, each with a deferred unlock.
type store struct {
	mu sync.RWMutex
	m  map[string]int
}

func (s *store) Set(key string, v int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = v
}

func (s *store) Get(key string) (int, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[key]
	return v, ok
}

func (s *store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for range s.m {
		n++
	}
	return n
}

// deferRWMutexStore: two readers at once, then a writer, then a reader again.
func deferRWMutexStore() {
	s := &store{m: make(map[string]int)}
	s.Set("a", 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = s.Get("a")
	}()
	go func() {
		defer wg.Done()
		_ = s.Len()
	}()
	pause()
	s.Set("b", 2)
	wg.Wait()
	_, _ = s.Get("b")
}

// scores is store with an increment that took the read lock.
type scores struct {
	mu sync.RWMutex
	m  map[string]int
}

func (s *scores) Add(key string, n int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.m[key] += n // race:defer_rwmutex_write_under_rlock
}

func (s *scores) Get(key string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[key] // race:defer_rwmutex_write_under_rlock
}

// deferRWMutexWriteUnderRLock: Add writes under RLock, which does not exclude a reader.
func deferRWMutexWriteUnderRLock() {
	s := &scores{m: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Add("a", 1)
	}()
	pause()
	_ = s.Get("a")
	<-done
}

// shard is one part of a sharded map.
type shard struct {
	mu sync.Mutex
	m  map[int]int
}

func newShards(n int) []*shard {
	shards := make([]*shard, n)
	for i := range shards {
		shards[i] = &shard{m: make(map[int]int)}
	}
	return shards
}

// resetAll locks every shard (a defer per loop iteration: heap-allocated defer records) and
// rewrites them all while holding every lock.
func resetAll(shards []*shard) {
	for _, s := range shards {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	for i, s := range shards {
		s.m[i] = i
	}
}

// deferInLoop: one goroutine resets every shard under all locks; another then reads one shard
// under its lock.
func deferInLoop() {
	shards := newShards(3)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resetAll(shards)
	}()
	pause()
	s := shards[1]
	s.mu.Lock()
	_ = s.m[1]
	s.mu.Unlock()
	<-done
}

// resetAllButFirst is resetAll that does not lock the first shard (ranging over shards[1:]).
func resetAllButFirst(shards []*shard) {
	for _, s := range shards[1:] {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	for i, s := range shards {
		s.m[i] = i // race:defer_in_loop_missed_shard
	}
}

// deferInLoopMissedShard: the loop that takes the locks skips shard 0; a reader holding shard 0's
// lock is not ordered with the write to it.
func deferInLoopMissedShard() {
	shards := newShards(3)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resetAllButFirst(shards)
	}()
	pause()
	s := shards[0]
	s.mu.Lock()
	_ = s.m[0] // race:defer_in_loop_missed_shard
	s.mu.Unlock()
	<-done
}

// withLock runs f holding l: Lock and Unlock are interface calls, never inlined.
func withLock(l sync.Locker, f func()) {
	l.Lock()
	f()
	l.Unlock()
}

// lockerInterface: a writer and a reader both through withLock on the same RWMutex.
func lockerInterface() {
	m := make(map[int]int)
	var mu sync.RWMutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		withLock(&mu, func() { fill(m) })
	}()
	pause()
	withLock(mu.RLocker(), func() { _ = m[3] })
	withLock(&mu, func() { m[3] = 30 })
	<-done
}

// lockerInterfaceRLocker: the writer was handed mu.RLocker(), whose Lock is RLock.
func lockerInterfaceRLocker() {
	m := make(map[int]int)
	var mu sync.RWMutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		withLock(mu.RLocker(), func() { m[3] = 30 }) // race:locker_interface_rlocker
	}()
	pause()
	withLock(mu.RLocker(), func() { _ = m[3] }) // race:locker_interface_rlocker
	<-done
}

// sessions returns its unlock from lock, so callers write `defer s.lock()()`: the unlock is a
// method value called by the deferred call.
type sessions struct {
	mu sync.Mutex
	m  map[string]int
}

func (s *sessions) lock() func() {
	s.mu.Lock()
	return s.mu.Unlock
}

func (s *sessions) touch(id string) {
	defer s.lock()()
	s.m[id]++
}

func (s *sessions) count(id string) int {
	defer s.lock()()
	return s.m[id]
}

// unlockMethodValue: a writer and a later reader, both with `defer s.lock()()`.
func unlockMethodValue() {
	s := &sessions{m: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.touch("a")
	}()
	pause()
	_ = s.count("a")
	s.touch("a")
	<-done
}

// visits is sessions whose reader wrote `defer v.lock()`: the lock is taken only when the reader
// returns, after its read (and never released: nothing locks afterwards).
type visits struct {
	mu sync.Mutex
	m  map[string]int
}

func (v *visits) lock() func() {
	v.mu.Lock()
	return v.mu.Unlock
}

func (v *visits) touch(id string) {
	defer v.lock()()
	v.m[id]++ // race:unlock_method_value_deferred_lock
}

func (v *visits) count(id string) int {
	defer v.lock()
	return v.m[id] // race:unlock_method_value_deferred_lock
}

// unlockMethodValueDeferredLock: the missing () defers the lock instead of the unlock.
func unlockMethodValueDeferredLock() {
	v := &visits{m: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.touch("a")
	}()
	pause()
	_ = v.count("a")
	<-done
}

// deferRUnlockClosure: readers in closures with a deferred RUnlock; a writer after them.
func deferRUnlockClosure() {
	m := make(map[string]int)
	m["a"] = 1
	var mu sync.RWMutex
	lookup := func(key string) (int, bool) {
		mu.RLock()
		defer mu.RUnlock()
		v, ok := m[key]
		return v, ok
	}
	var wg sync.WaitGroup
	wg.Add(2)
	for _, key := range []string{"a", "b"} {
		go func(key string) {
			defer wg.Done()
			_, _ = lookup(key)
		}(key)
	}
	pause()
	func() {
		mu.Lock()
		defer mu.Unlock()
		m["b"] = 2
	}()
	wg.Wait()
}

// deferRUnlockClosureFillOnMiss: a cache that looks up under a deferred RUnlock and, on a miss,
// fills the entry after the read lock is gone.
func deferRUnlockClosureFillOnMiss() {
	cache := make(map[string]int)
	var mu sync.RWMutex
	lookup := func(key string) (int, bool) {
		mu.RLock()
		defer mu.RUnlock()
		v, ok := cache[key] // race:defer_runlock_closure_fill_on_miss
		return v, ok
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, ok := lookup("a"); !ok {
			cache["a"] = len("a") // race:defer_runlock_closure_fill_on_miss
		}
	}()
	pause()
	_, _ = lookup("b")
	<-done
}

var errInvalid = errors.New("invalid value")

// ledger records entries under a mutex; put panics on a negative value after recording the key,
// and its deferred Unlock runs while the panic unwinds.
type ledger struct {
	mu      sync.Mutex
	entries map[string]int
}

func (l *ledger) put(key string, v int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries[key] = 0
	if v < 0 {
		panic(errInvalid)
	}
	l.entries[key] = v
}

// tryPut turns put's panic into an error.
func (l *ledger) tryPut(key string, v int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = r.(error)
		}
	}()
	l.put(key, v)
	return nil
}

func (l *ledger) get(key string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.entries[key]
}

// deferUnlockRecoveredPanic: the writer panics under the lock and recovers; the reader then locks.
func deferUnlockRecoveredPanic() {
	l := &ledger{entries: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.tryPut("a", -1)
	}()
	pause()
	_ = l.get("a")
	<-done
}

// journal is ledger whose recovery handler also counts the failure, after put's deferred Unlock
// has run: outside the lock.
type journal struct {
	mu      sync.Mutex
	entries map[string]int
	failed  map[string]int
}

func (j *journal) put(key string, v int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if v < 0 {
		panic(errInvalid)
	}
	j.entries[key] = v
}

func (j *journal) tryPut(key string, v int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			j.failed[key]++ // race:defer_unlock_recovered_panic_unlocked_handler
			err = r.(error)
		}
	}()
	j.put(key, v)
	return nil
}

func (j *journal) failures(key string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed[key] // race:defer_unlock_recovered_panic_unlocked_handler
}

// deferUnlockRecoveredPanicUnlockedHandler: the handler's write is not under the lock the reader
// takes.
func deferUnlockRecoveredPanicUnlockedHandler() {
	j := &journal{entries: make(map[string]int), failed: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = j.tryPut("a", -1)
	}()
	pause()
	_ = j.failures("a")
	<-done
}

// timings records how many times each operation ran, in a deferred closure that takes the lock.
type timings struct {
	mu   sync.Mutex
	runs map[string]int
}

func (t *timings) do(op string, f func()) {
	defer func() {
		t.mu.Lock()
		t.runs[op]++
		t.mu.Unlock()
	}()
	f()
}

func (t *timings) count(op string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[op]
}

// lockInDeferredClosure: one goroutine runs an operation (recorded by the deferred closure under
// the lock); the other then reads the count under the lock.
func lockInDeferredClosure() {
	t := &timings{runs: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.do("load", func() {})
	}()
	pause()
	_ = t.count("load")
	<-done
}

// tally is timings whose deferred closure forgot the lock.
type tally struct {
	mu   sync.Mutex
	runs map[string]int
}

func (t *tally) do(op string, f func()) {
	defer func() {
		t.runs[op]++ // race:deferred_closure_unlocked
	}()
	f()
}

func (t *tally) count(op string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.runs[op] // race:deferred_closure_unlocked
}

// deferredClosureUnlocked: the deferred record is not under the lock the reader takes.
func deferredClosureUnlocked() {
	t := &tally{runs: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t.do("load", func() {})
	}()
	pause()
	_ = t.count("load")
	<-done
}
