// The clear, delete and make op classes: a clear and a delete are writes; a map made in one
// goroutine is a new map, whatever address it reuses.
package main

import (
	"runtime"
	"sync"
)

// clearUnderMutex: one goroutine clears the map and another writes and ranges it, both under
// one mutex; the parent reads after the join.
func clearUnderMutex() {
	m := make(map[int]int)
	fill(m)
	var mu sync.Mutex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		mu.Lock()
		clear(m)
		mu.Unlock()
	}()
	go func() {
		defer wg.Done()
		pause()
		mu.Lock()
		m[1] = 1
		for k, v := range m {
			_, _ = k, v
		}
		mu.Unlock()
	}()
	wg.Wait()
	_ = m[1]
}

// clearVsRead: a clear is a write to the whole map.
func clearVsRead() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		clear(m) // race:clear_vs_read
		close(done)
	}()
	pause()
	_, _ = m[1] // race:clear_vs_read
	<-done
}

// rangeVsDelete: an iteration against an earlier delete.
func rangeVsDelete() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		delete(m, 3) // race:range_vs_delete
		close(done)
	}()
	pause()
	for k := range m { // race:range_vs_delete
		_ = k
	}
	<-done
}

// makeInWorkerHandoff: a worker makes and fills a map and hands it over on a channel.
func makeInWorkerHandoff() {
	out := make(chan map[int]int)
	go func() {
		m := make(map[int]int)
		fill(m)
		out <- m
	}()
	m := <-out
	_ = m[2]
	m[2] = 20
}

// makeInWorkerWriteAfterSend: the worker makes a map, hands it over, and writes it again later.
func makeInWorkerWriteAfterSend() {
	out := make(chan map[int]int)
	done := make(chan struct{})
	go func() {
		m := make(map[int]int)
		fill(m)
		out <- m
		pause()
		m[2] = 20 // race:make_in_worker_write_after_send
		close(done)
	}()
	m := <-out
	_ = m[2] // race:make_in_worker_write_after_send
	<-done
}

// makeAddressReuse: goroutines that are never joined each make, write and drop a small map, a
// collection apart. The allocator may give a later map the address of an earlier, dead one; they
// are different maps, so their accesses never race, however unordered the goroutines are.
func makeAddressReuse() {
	// Each goroutine parks its map in its own slot while using it, which makes the map escape:
	// it comes from makemap on the heap, as a map shared between goroutines would, not from the
	// goroutine's stack. Clearing the slot drops the map for the next collection.
	slots := make([]map[int]int, 3)
	for round := range slots {
		go func(round int) {
			m := make(map[int]int)
			slots[round] = m
			fill(m)
			m[round] = round
			slots[round] = nil
		}(round)
		pause()
		runtime.GC()
	}
}
