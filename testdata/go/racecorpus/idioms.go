// Idioms of real Go code around maps: sync.Once and OnceFunc/OnceValue/OnceValues, sync.Cond,
// context cancellation, worker pools, errgroup-style fan-out, time.AfterFunc and timers,
// sync.Pool, select with default, request/reply over channels of channels, goroutines started in
// init, generic and embedded-mutex map types, one-line lock wrappers, maps.Clone and map literals.
package main

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"
)

// colors is a package-level table made on first use (colorTable only).
var (
	colorsOnce sync.Once
	colors     map[string]int
)

func colorTable() map[string]int {
	colorsOnce.Do(func() {
		colors = map[string]int{"red": 1, "green": 2}
	})
	return colors
}

// oncePackageMap: two goroutines ask for the package-level table.
func oncePackageMap() {
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			_ = colorTable()["red"]
		}()
	}
	wg.Wait()
}

// units is a package-level table made on first use (unitTable only); register adds to it later.
var (
	unitsOnce sync.Once
	units     map[string]int
)

func unitTable() map[string]int {
	unitsOnce.Do(func() {
		units = map[string]int{"m": 1, "km": 1000}
	})
	return units
}

func registerUnit(name string, scale int) {
	unitTable()[name] = scale // race:once_package_map_register
}

// oncePackageMapRegister: a registration after the lazy init writes the shared table.
func oncePackageMapRegister() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = unitTable()["km"] // race:once_package_map_register
	}()
	pause()
	registerUnit("cm", 1)
	<-done
}

// onceFunc: the table is filled by a sync.OnceFunc every reader calls first.
func onceFunc() {
	m := make(map[int]int)
	load := sync.OnceFunc(func() { fill(m) })
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			load()
			_ = m[3]
		}()
	}
	wg.Wait()
}

// onceFuncNotCalled: one reader forgot to call load before reading.
func onceFuncNotCalled() {
	m := make(map[int]int)
	load := sync.OnceFunc(func() { m[3] = 9 }) // race:once_func_not_called
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = m[3] // race:once_func_not_called
	}()
	pause()
	load()
	<-done
}

// onceValue: a table computed once by sync.OnceValue and only read.
func onceValue() {
	table := sync.OnceValue(func() map[string]int {
		return map[string]int{"a": 1, "b": 2}
	})
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			_ = table()["a"]
		}()
	}
	wg.Wait()
}

// onceValueMutated: a caller changes the cached table every other caller shares.
func onceValueMutated() {
	table := sync.OnceValue(func() map[string]int {
		return map[string]int{"a": 1, "b": 2}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = table()["a"] // race:once_value_mutated
	}()
	pause()
	t := table()
	t["a"] = 10 // race:once_value_mutated
	<-done
}

// onceValues: a table and an error computed once by sync.OnceValues.
func onceValues() {
	load := sync.OnceValues(func() (map[string]int, error) {
		return map[string]int{"a": 1}, nil
	})
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			if t, err := load(); err == nil {
				_ = t["a"]
			}
		}()
	}
	wg.Wait()
}

// onceValuesDeleted: a caller deletes from the cached table.
func onceValuesDeleted() {
	load := sync.OnceValues(func() (map[string]int, error) {
		return map[string]int{"a": 1, "b": 2}, nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if t, err := load(); err == nil {
			_, _ = t["b"] // race:once_values_deleted
		}
	}()
	pause()
	if t, err := load(); err == nil {
		delete(t, "b") // race:once_values_deleted
	}
	<-done
}

// condSignal: the producer puts an entry under the Cond's lock and signals; the consumer waits for
// it under the lock.
func condSignal() {
	m := make(map[string]int)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	ready := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		mu.Lock()
		for !ready {
			cond.Wait()
		}
		_ = m["job"]
		mu.Unlock()
	}()
	pause()
	mu.Lock()
	m["job"] = 1
	ready = true
	cond.Signal()
	mu.Unlock()
	<-done
	mu.Lock()
	m["job"] = 2
	mu.Unlock()
}

// condSignalReadAfterUnlock: the consumer reads after it dropped the lock; the producer's next
// write under the lock is not ordered with that read.
func condSignalReadAfterUnlock() {
	m := make(map[string]int)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	ready := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		mu.Lock()
		for !ready {
			cond.Wait()
		}
		mu.Unlock()
		_ = m["job"] // race:cond_signal_read_after_unlock
	}()
	mu.Lock()
	m["job"] = 1
	ready = true
	cond.Signal()
	mu.Unlock()
	pause()
	mu.Lock()
	m["job"] = 2 // race:cond_signal_read_after_unlock
	mu.Unlock()
	<-done
}

// condBroadcast: two waiters wake on a Broadcast after the table is filled under the lock.
func condBroadcast() {
	m := make(map[int]int)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	started := false
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			for !started {
				cond.Wait()
			}
			_ = m[3]
		}()
	}
	pause()
	mu.Lock()
	fill(m)
	started = true
	cond.Broadcast()
	mu.Unlock()
	wg.Wait()
}

// condBroadcastFillAfter: the flag is set and broadcast first; the table is filled after the
// lock is dropped.
func condBroadcastFillAfter() {
	m := make(map[int]int)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	started := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		mu.Lock()
		defer mu.Unlock()
		for !started {
			cond.Wait()
		}
		_, _ = m[3] // race:cond_broadcast_fill_after
	}()
	mu.Lock()
	started = true
	cond.Broadcast()
	mu.Unlock()
	pause()
	m[3] = 9 // race:cond_broadcast_fill_after
	<-done
}

// contextCancel: the main goroutine records why it stops, then cancels; the worker flushes after
// ctx.Done.
func contextCancel() {
	pending := make(map[string]int)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		_ = pending["reason"]
	}()
	pause()
	pending["reason"] = 1
	cancel()
	<-done
}

// contextCancelWriteAfter: the reason is recorded after cancel.
func contextCancelWriteAfter() {
	pending := make(map[string]int)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		_, _ = pending["reason"] // race:context_cancel_write_after
	}()
	cancel()
	pause()
	pending["reason"] = 1 // race:context_cancel_write_after
	<-done
}

// result is what a pool worker sends back.
type result struct{ key, value int }

// workerPool: workers read a shared price table filled before they start and send results; the
// parent collects them into its own map.
func workerPool() {
	prices := make(map[int]int)
	fill(prices)
	jobs := make(chan int, 4)
	results := make(chan result)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- result{j, prices[j] * 2}
			}
		}()
	}
	for j := 0; j < 4; j++ {
		jobs <- j
	}
	close(jobs)
	go func() {
		wg.Wait()
		close(results)
	}()
	totals := make(map[int]int)
	for r := range results {
		totals[r.key] = r.value
	}
	prices[0] = 1
}

// workerPoolUpdateWhileRunning: the parent updates the price table while workers still read it.
func workerPoolUpdateWhileRunning() {
	prices := make(map[int]int)
	fill(prices)
	jobs := make(chan int, 4)
	results := make(chan result, 4)
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- result{j, prices[j] * 2} // race:worker_pool_update_while_running
			}
		}()
	}
	for j := 0; j < 4; j++ {
		jobs <- j
	}
	close(jobs)
	pause()
	prices[0] = 1 // race:worker_pool_update_while_running
	wg.Wait()
	close(results)
	totals := make(map[int]int)
	for r := range results {
		totals[r.key] = r.value
	}
}

var errTask = errors.New("task failed")

// fanOut runs tasks each on its own goroutine, each filling its own map; it returns the first
// error through a channel of one, after all have finished.
func fanOut(tasks []func(map[int]int) error) ([]map[int]int, error) {
	parts := make([]map[int]int, len(tasks))
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for i, task := range tasks {
		parts[i] = make(map[int]int)
		wg.Add(1)
		go func(part map[int]int, task func(map[int]int) error) {
			defer wg.Done()
			if err := task(part); err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		}(parts[i], task)
	}
	wg.Wait()
	close(errc)
	return parts, <-errc
}

// errgroupFanOut: one task fails, the other fills its part; the parent reads after fanOut returns.
func errgroupFanOut() {
	parts, err := fanOut([]func(map[int]int) error{
		func(m map[int]int) error { return errTask },
		func(m map[int]int) error { pause(); fill(m); return nil },
	})
	if err != nil {
		_ = parts[1][3]
	}
}

// errgroupReturnOnFirstError: fan-out that returns at the first error, while the other tasks
// still run; the caller reads their parts.
func errgroupReturnOnFirstError() {
	parts := []map[int]int{make(map[int]int), make(map[int]int)}
	tasks := []func(map[int]int) error{
		func(m map[int]int) error { return errTask },
		func(m map[int]int) error { pause(); m[3] = 9; return nil }, // race:errgroup_return_on_first_error
	}
	errc := make(chan error, len(tasks))
	var wg sync.WaitGroup
	for i, task := range tasks {
		wg.Add(1)
		go func(part map[int]int, task func(map[int]int) error) {
			defer wg.Done()
			errc <- task(part)
		}(parts[i], task)
	}
	for range tasks {
		if err := <-errc; err != nil {
			break
		}
	}
	_, _ = parts[1][3] // race:errgroup_return_on_first_error
	wg.Wait()
}

// afterFunc: the table is filled before time.AfterFunc arms the callback that reads it.
func afterFunc() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	time.AfterFunc(time.Millisecond, func() {
		defer close(done)
		_ = m[3]
	})
	<-done
	m[3] = 1
}

// afterFuncWriteAfterArm: the table is written after the callback is armed.
func afterFuncWriteAfterArm() {
	m := make(map[int]int)
	done := make(chan struct{})
	time.AfterFunc(time.Millisecond, func() {
		defer close(done)
		_, _ = m[3] // race:after_func_write_after_arm
	})
	pause()
	m[3] = 1 // race:after_func_write_after_arm
	<-done
}

// timerTimeout: the parent waits for the worker or a timeout, and reads the results only when the
// worker finished.
func timerTimeout() {
	m := make(map[int]int)
	done := make(chan struct{})
	go func() {
		fill(m)
		close(done)
	}()
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	select {
	case <-done:
		_ = m[3]
	case <-timer.C:
	}
}

// timerTimeoutReadPartial: on timeout the parent reads the partial results while the worker
// still writes them.
func timerTimeoutReadPartial() {
	m := make(map[int]int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pause()
		m[3] = 9 // race:timer_timeout_read_partial
	}()
	timer := time.NewTimer(time.Millisecond)
	select {
	case <-done:
	case <-timer.C:
	}
	_, _ = m[3] // race:timer_timeout_read_partial
	<-done
}

// syncPool: goroutines take scratch maps from a pool, use them, clear them and put them back.
// Put happens before the Get that returns the same map.
func syncPool() {
	pool := sync.Pool{New: func() any { return make(map[int]int) }}
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 3; i++ {
				m := pool.Get().(map[int]int)
				m[g] = i
				clear(m)
				pool.Put(m)
				pause()
			}
		}(g)
	}
	wg.Wait()
}

// syncPoolCountingNew: the pool's New counts allocations in an unguarded map; two Gets that find
// the pool empty call New on two goroutines.
func syncPoolCountingNew() {
	allocs := make(map[string]int)
	pool := sync.Pool{New: func() any {
		allocs["scratch"]++ // race:sync_pool_counting_new
		return make(map[int]int)
	}}
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			if g == 1 {
				pause()
			}
			m := pool.Get().(map[int]int)
			m[g] = g
			pause()
			pause()
			pool.Put(m)
		}(g)
	}
	wg.Wait()
}

// selectDefaultToken: the map travels with a token channel; a goroutine that cannot take the
// token without blocking skips the map and later takes it properly.
func selectDefaultToken() {
	owner := make(chan map[int]int, 1)
	m := make(map[int]int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case t := <-owner:
			_ = t[3]
			owner <- t
		default:
			// Busy: come back when it is free.
		}
		t := <-owner
		_ = t[3]
		owner <- t
	}()
	pause()
	fill(m)
	owner <- m
	<-done
}

// selectDefaultReadAnyway: when the token is taken, the fast path reads the map anyway.
func selectDefaultReadAnyway() {
	owner := make(chan map[int]int, 1)
	cache := make(map[int]int)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case t := <-owner:
			_ = t[3]
			owner <- t
		default:
			_, _ = cache[3] // race:select_default_read_anyway
		}
	}()
	pause()
	cache[3] = 9 // race:select_default_read_anyway
	owner <- cache
	<-done
}

// lookupReq asks a server goroutine for a key; the answer comes back on the request's channel.
type lookupReq struct {
	key   int
	set   bool
	reply chan int
}

// requestReply: a server goroutine owns its map; clients set and get through requests.
func requestReply() {
	reqs := make(chan lookupReq)
	go func() {
		m := make(map[int]int)
		for r := range reqs {
			if r.set {
				m[r.key] = r.key * 10
			}
			r.reply <- m[r.key]
		}
	}()
	ask := func(key int, set bool) int {
		reply := make(chan int)
		reqs <- lookupReq{key, set, reply}
		return <-reply
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ask(1, true)
	}()
	pause()
	ask(1, false)
	<-done
	close(reqs)
}

// snapshotReq asks the server for its table.
type snapshotReq struct {
	set   int
	reply chan map[int]int
}

// requestReplySnapshot: the server answers a snapshot request with its own map, which the client
// reads while the server serves the next request.
func requestReplySnapshot() {
	reqs := make(chan snapshotReq)
	go func() {
		m := make(map[int]int)
		fill(m)
		for r := range reqs {
			if r.set != 0 {
				m[r.set] = 1 // race:request_reply_snapshot
			}
			r.reply <- m
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pause()
		reply := make(chan map[int]int)
		reqs <- snapshotReq{3, reply}
		<-reply
	}()
	reply := make(chan map[int]int)
	reqs <- snapshotReq{0, reply}
	snap := <-reply
	_ = snap[3] // race:request_reply_snapshot
	<-done
	close(reqs)
}

// Loaders started in init for the init_goroutine cases: each idles until its case closes start.
var (
	initLoaderStart  = make(chan struct{})
	initLoaderLoaded = make(chan struct{})
	initDefaults     = map[string]int{}

	initEagerStart    = make(chan struct{})
	initEagerDefaults = map[string]int{}
)

func init() {
	go func() {
		<-initLoaderStart
		initDefaults["timeout"] = 30
		close(initLoaderLoaded)
	}()
	go func() {
		<-initEagerStart
		initEagerDefaults["timeout"] = 30 // race:init_goroutine_no_wait
	}()
}

// initGoroutine: a loader goroutine started in init fills the defaults; the case waits for it.
func initGoroutine() {
	close(initLoaderStart)
	<-initLoaderLoaded
	_ = initDefaults["timeout"]
}

// initGoroutineNoWait: the case reads the defaults without waiting for the init loader.
func initGoroutineNoWait() {
	close(initEagerStart)
	pause()
	_ = initEagerDefaults["timeout"] // race:init_goroutine_no_wait
}

// SafeMap is a generic map guarded by an RWMutex.
type SafeMap[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

func NewSafeMap[K comparable, V any]() *SafeMap[K, V] {
	return &SafeMap[K, V]{m: make(map[K]V)}
}

func (s *SafeMap[K, V]) Get(k K) (V, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[k]
	return v, ok
}

func (s *SafeMap[K, V]) Set(k K, v V) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = v
}

func (s *SafeMap[K, V]) Range(f func(K, V) bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k, v := range s.m {
		if !f(k, v) {
			return
		}
	}
}

// All returns the map itself: callers then use it without the lock.
func (s *SafeMap[K, V]) All() map[K]V {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m
}

// genericSafeMap: a writer and two readers of a SafeMap[string, int].
func genericSafeMap() {
	s := NewSafeMap[string, int]()
	s.Set("a", 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = s.Get("a")
	}()
	go func() {
		defer wg.Done()
		s.Range(func(k string, v int) bool { return true })
	}()
	pause()
	s.Set("b", 2)
	wg.Wait()
}

// genericSafeMapLeaked: a caller ranges over the map All returned, outside the lock.
func genericSafeMapLeaked() {
	s := NewSafeMap[int, string]()
	s.Set(1, "a")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k, v := range s.All() { // race:generic_safe_map_leaked
			_, _ = k, v
		}
	}()
	pause()
	s.Set(2, "b") // race:generic_safe_map_leaked
	<-done
}

// registry embeds its mutex.
type registry struct {
	sync.Mutex
	m map[string]int
}

func (r *registry) add(name string) {
	r.Lock()
	defer r.Unlock()
	r.m[name]++
}

func (r *registry) has(name string) bool {
	r.Lock()
	defer r.Unlock()
	return r.m[name] > 0
}

// embeddedMutex: a writer and a reader locking the embedded mutex.
func embeddedMutex() {
	r := &registry{m: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.add("a")
	}()
	pause()
	_ = r.has("a")
	<-done
}

// catalog embeds its mutex; its reader, thought read-only, does not lock.
type catalog struct {
	sync.Mutex
	m map[string]int
}

func (c *catalog) add(name string) {
	c.Lock()
	defer c.Unlock()
	c.m[name]++ // race:embedded_mutex_unlocked_reader
}

func (c *catalog) has(name string) bool {
	return c.m[name] > 0 // race:embedded_mutex_unlocked_reader
}

// embeddedMutexUnlockedReader: the writer locks the embedded mutex, the reader does not.
func embeddedMutexUnlockedReader() {
	c := &catalog{m: make(map[string]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.add("a")
	}()
	pause()
	_ = c.has("a")
	<-done
}

// table wraps its RWMutex in one-line methods, so it is a sync.Locker and has RLock/RUnlock.
type table struct {
	mu sync.RWMutex
	m  map[int]int
}

func (t *table) Lock()    { t.mu.Lock() }
func (t *table) Unlock()  { t.mu.Unlock() }
func (t *table) RLock()   { t.mu.RLock() }
func (t *table) RUnlock() { t.mu.RUnlock() }

// readLocker is what readers of a table need.
type readLocker interface {
	RLock()
	RUnlock()
}

// lockWrappers: a writer through the sync.Locker interface, a reader through the wrappers
// directly, and a reader through an interface.
func lockWrappers() {
	t := &table{m: make(map[int]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var l sync.Locker = t
		l.Lock()
		fill(t.m)
		l.Unlock()
	}()
	pause()
	t.RLock()
	_ = t.m[3]
	t.RUnlock()
	var r readLocker = t
	r.RLock()
	_ = t.m[4]
	r.RUnlock()
	<-done
}

// grid is table with a copy-pasted wrapper: its Lock takes the read lock.
type grid struct {
	mu sync.RWMutex
	m  map[int]int
}

func (g *grid) Lock()    { g.mu.RLock() }
func (g *grid) Unlock()  { g.mu.RUnlock() }
func (g *grid) RLock()   { g.mu.RLock() }
func (g *grid) RUnlock() { g.mu.RUnlock() }

// lockWrapperTakesRLock: the writer through sync.Locker holds only a read lock.
func lockWrapperTakesRLock() {
	g := &grid{m: make(map[int]int)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var l sync.Locker = g
		l.Lock()
		g.m[3] = 9 // race:lock_wrapper_takes_rlock
		l.Unlock()
	}()
	pause()
	g.RLock()
	_ = g.m[3] // race:lock_wrapper_takes_rlock
	g.RUnlock()
	<-done
}

// mapsCloneHandoff: each request gets a maps.Clone of the defaults, changed by a worker and read
// after the worker is done.
func mapsCloneHandoff() {
	defaults := map[string]int{"retries": 3, "timeout": 30}
	opts := maps.Clone(defaults)
	done := make(chan struct{})
	go func() {
		defer close(done)
		opts["retries"] = 5
	}()
	<-done
	_ = opts["retries"]
	_ = defaults["retries"]
}

// mapsCloneNoWait: the caller reads the clone while the worker may still change it.
func mapsCloneNoWait() {
	defaults := map[string]int{"retries": 3, "timeout": 30}
	opts := maps.Clone(defaults)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pause()
		opts["retries"] = 5 // race:maps_clone_no_wait
	}()
	_ = opts["retries"] // race:maps_clone_no_wait
	<-done
}

// mapLiteralGuarded: a map made by a composite literal, guarded by a mutex.
func mapLiteralGuarded() {
	limits := map[string]int{"a": 1, "b": 2}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		mu.Lock()
		limits["a"] = 10
		mu.Unlock()
	}()
	pause()
	mu.Lock()
	_ = limits["a"]
	mu.Unlock()
	<-done
}

// mapLiteralUnguarded: the reader of the literal map does not lock.
func mapLiteralUnguarded() {
	limits := map[string]int{"a": 1, "b": 2}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		mu.Lock()
		limits["a"] = 10 // race:map_literal_unguarded
		mu.Unlock()
	}()
	pause()
	_ = limits["a"] // race:map_literal_unguarded
	<-done
}
