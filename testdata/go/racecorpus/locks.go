// sync primitives: WaitGroup joins, Mutex, RWMutex (RLock readers and Lock writers), Once.
package main

import "sync"

// waitGroupJoin: each worker fills its own map and reads a shared one the parent filled before
// starting them; Wait orders every worker's writes before the parent's merge.
func waitGroupJoin() {
	shared := make(map[int]int)
	fill(shared)
	parts := []map[int]int{make(map[int]int), make(map[int]int)}
	var wg sync.WaitGroup
	for w := range parts {
		wg.Add(1)
		go func(part map[int]int, w int) {
			defer wg.Done()
			for k := 0; k < 4; k++ {
				part[k] = shared[k] + w
			}
		}(parts[w], w)
	}
	wg.Wait()
	total := make(map[int]int)
	for _, part := range parts {
		for k, v := range part {
			total[k] += v
		}
	}
	delete(shared, 0)
}

// waitGroupReadBeforeWait: the parent reads before it waits.
func waitGroupReadBeforeWait() {
	m := make(map[int]int)
	fill(m)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m[3] = 30 // race:waitgroup_read_before_wait
	}()
	pause()
	_ = m[3] // race:waitgroup_read_before_wait
	wg.Wait()
}

// mutexGuarded: a writer and a reader that both hold the same mutex.
func mutexGuarded() {
	m := make(map[int]int)
	fill(m)
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		mu.Lock()
		m[1] = 10
		mu.Unlock()
	}()
	go func() {
		defer wg.Done()
		pause()
		mu.Lock()
		_ = m[1]
		m[2] = 20
		mu.Unlock()
	}()
	wg.Wait()
}

// mutexUnguardedReader: the writer locks, the reader does not.
func mutexUnguardedReader() {
	m := make(map[int]int)
	fill(m)
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		mu.Lock()
		m[2] = 20 // race:mutex_unguarded_reader
		mu.Unlock()
	}()
	pause()
	_ = m[2] // race:mutex_unguarded_reader
	wg.Wait()
}

// bumpUnder increments a counter under a mutex: correct only if every caller passes the same one.
func bumpUnder(mu *sync.Mutex, m map[int]int) {
	mu.Lock()
	m[1]++ // race:mutex_two_locks
	mu.Unlock()
}

// mutexTwoLocks: two goroutines guard one map with two different mutexes; the racing line is the
// same helper line in both.
func mutexTwoLocks() {
	m := make(map[int]int)
	fill(m)
	var first, second sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		bumpUnder(&first, m)
	}()
	go func() {
		defer wg.Done()
		pause()
		bumpUnder(&second, m)
	}()
	wg.Wait()
}

// rwMutexReadersWriter: a writer under Lock, then two readers under RLock at the same time (one
// reads a key, one iterates), then the writer again: RUnlock happens before the next Lock.
func rwMutexReadersWriter() {
	m := make(map[int]int)
	var mu sync.RWMutex
	var wg sync.WaitGroup
	mu.Lock()
	fill(m)
	mu.Unlock()
	wg.Add(2)
	go func() {
		defer wg.Done()
		mu.RLock()
		_ = m[3]
		mu.RUnlock()
	}()
	go func() {
		defer wg.Done()
		mu.RLock()
		for k, v := range m {
			_, _ = k, v
		}
		mu.RUnlock()
	}()
	pause()
	mu.Lock()
	m[3] = 30
	delete(m, 4)
	mu.Unlock()
	wg.Wait()
}

// rwMutexWriteUnderRLock: a write under a read lock: read locks do not exclude each other, so
// nothing orders it with another reader.
func rwMutexWriteUnderRLock() {
	m := make(map[int]int)
	fill(m)
	var mu sync.RWMutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		mu.RLock()
		m[4] = 40 // race:rwmutex_write_under_rlock
		mu.RUnlock()
	}()
	go func() {
		defer wg.Done()
		pause()
		mu.RLock()
		_ = m[4] // race:rwmutex_write_under_rlock
		mu.RUnlock()
	}()
	wg.Wait()
}

// lazyTable makes and fills a table the first time it is asked for.
type lazyTable struct {
	once  sync.Once
	table map[int]int
}

func (l *lazyTable) get() map[int]int {
	l.once.Do(func() {
		l.table = make(map[int]int)
		fill(l.table)
	})
	return l.table
}

// onceInit: two goroutines ask for the table; Do's return is ordered after the initialisation.
func onceInit() {
	lazy := &lazyTable{}
	var wg sync.WaitGroup
	wg.Add(2)
	for g := 0; g < 2; g++ {
		go func() {
			defer wg.Done()
			_ = lazy.get()[3]
		}()
	}
	wg.Wait()
}

// onceWriteAfterInit: Once orders the initialisation, not a write made after it.
func onceWriteAfterInit() {
	lazy := &lazyTable{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t := lazy.get()
		t[9] = 90 // race:once_write_after_init
	}()
	go func() {
		defer wg.Done()
		pause()
		t := lazy.get()
		_ = t[9] // race:once_write_after_init
	}()
	wg.Wait()
}
