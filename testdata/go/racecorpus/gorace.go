// The map cases of the Go race detector's own tests (runtime/race), written anew: the racy ones
// with their two accesses a sleep apart, so the race is one of ordering, never of overlap.
package main

import "sync"

// goraceRW: a goroutine reads a key (one-result form) that its parent later writes.
func goraceRW() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		_ = m[1] // race:gorace_rw
		close(done)
	}()
	pause()
	m[1] = 100 // race:gorace_rw
	<-done
}

// goraceRW2: the same with the comma-ok read.
func goraceRW2() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		_, _ = m[1] // race:gorace_rw2
		close(done)
	}()
	pause()
	m[1] = 100 // race:gorace_rw2
	<-done
}

// goraceRWArray: a map of arrays; indexing the array read from the map is a map read, which races
// with a write to another key (a race is on the map, not on one key).
func goraceRWArray() {
	m := make(map[int][4]int)
	for k := 0; k < 4; k++ {
		m[k] = [4]int{k, k, k, k}
	}
	done := make(chan struct{})
	go func() {
		_, _ = m[1] // race:gorace_rwarray
		close(done)
	}()
	pause()
	m[3] = [4]int{9, 9, 9, 9} // race:gorace_rwarray
	<-done
}

// goraceRange: an iteration without variables against a write.
func goraceRange() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		for range m { // race:gorace_range
		}
		close(done)
	}()
	pause()
	m[20] = 20 // race:gorace_range
	<-done
}

// goraceRange2: an iteration over keys and values against a write.
func goraceRange2() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		sum := 0
		for k, v := range m { // race:gorace_range2
			sum += k + v
		}
		_ = sum
		close(done)
	}()
	pause()
	m[20] = 20 // race:gorace_range2
	<-done
}

// goraceDelete: a delete against a read.
func goraceDelete() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		delete(m, 1) // race:gorace_delete
		close(done)
	}()
	pause()
	_, _ = m[2] // race:gorace_delete
	<-done
}

// goraceMapRR: two goroutines read one map at the same time, after their creation ordered the
// writes before them: reads never race with reads.
func goraceMapRR() {
	m := make(map[int]int)
	fill(m)
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 8; k++ {
				_ = m[k]
			}
		}()
	}
	wg.Wait()
}

// goraceMapRangeRange: two goroutines iterate over one map at the same time.
func goraceMapRangeRange() {
	m := make(map[int]int)
	fill(m)
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum := 0
			for k, v := range m {
				sum += k * v
			}
			_ = sum
		}()
	}
	wg.Wait()
}
