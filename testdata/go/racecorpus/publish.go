// Publication patterns: atomic.Value copy-on-write, sync.Map, and an actor goroutine that owns
// its map. Each is correct only while nobody writes a map after publishing it.
package main

import (
	"sync"
	"sync/atomic"
)

// atomicValueCopyOnWrite: readers load the current map and only read it; the single writer copies
// it, changes the copy and stores the copy. Store happens before the Load that returns it.
func atomicValueCopyOnWrite() {
	var current atomic.Value
	initial := make(map[int]int)
	fill(initial)
	current.Store(initial)
	update := func(key, value int) {
		old := current.Load().(map[int]int)
		next := make(map[int]int, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[key] = value
		current.Store(next)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		update(20, 20)
		pause()
		update(21, 21)
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 3; i++ {
			snapshot := current.Load().(map[int]int)
			_ = snapshot[20]
			for k, v := range snapshot {
				_, _ = k, v
			}
			pause()
		}
	}()
	wg.Wait()
}

// atomicValueMutateInPlace: the writer changes the published map instead of a copy; a reader
// that loaded it earlier reads it unordered with that write.
func atomicValueMutateInPlace() {
	var current atomic.Value
	m := make(map[int]int)
	fill(m)
	current.Store(m)
	done := make(chan struct{})
	go func() {
		snapshot := current.Load().(map[int]int)
		_ = snapshot[6] // race:atomic_value_mutate_in_place
		close(done)
	}()
	pause()
	current.Load().(map[int]int)[6] = 60 // race:atomic_value_mutate_in_place
	<-done
}

// syncMapValues: sessions in a sync.Map; each value is a map filled before it is stored and only
// read after it is loaded. Both goroutines also store, load, range and delete other keys, which
// exercises sync.Map's own internals (plain Go maps behind atomics before Go 1.24).
func syncMapValues() {
	var sessions sync.Map
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for id := 0; id < 4; id++ {
			attrs := make(map[int]int)
			fill(attrs)
			attrs[100] = id
			sessions.Store(id, attrs)
		}
		sessions.Delete(0)
	}()
	go func() {
		defer wg.Done()
		pause()
		for id := 0; id < 4; id++ {
			if v, ok := sessions.Load(id); ok {
				_ = v.(map[int]int)[100]
			}
		}
		sessions.Store(10, make(map[int]int))
		sessions.Range(func(_, v any) bool {
			_ = v.(map[int]int)[1]
			return true
		})
	}()
	wg.Wait()
}

// syncMapValueMutated: sync.Map orders the Store and the Load of a value, not a later write into
// the map that value is.
func syncMapValueMutated() {
	var sessions sync.Map
	attrs := make(map[int]int)
	fill(attrs)
	sessions.Store(1, attrs)
	done := make(chan struct{})
	go func() {
		v, _ := sessions.Load(1)
		_, _ = v.(map[int]int)[9] // race:syncmap_value_mutated
		close(done)
	}()
	pause()
	attrs[9] = 90 // race:syncmap_value_mutated
	<-done
}

// actorRequest asks the actor to set a key, or (with snapshot set) for its state.
type actorRequest struct {
	key, value int
	snapshot   chan map[int]int
}

// startActor runs the goroutine that owns a map: only it touches the map; clients talk to it over
// requests. With leak, a snapshot request returns the actor's own map instead of a copy.
func startActor(requests <-chan actorRequest, leak bool) (finished <-chan struct{}) {
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		state := make(map[int]int)
		fill(state)
		for req := range requests {
			if req.snapshot == nil {
				state[req.key] = req.value // race:actor_leaks_map
				continue
			}
			if leak {
				req.snapshot <- state
				continue
			}
			copied := make(map[int]int, len(state))
			for k, v := range state {
				copied[k] = v
			}
			req.snapshot <- copied
		}
	}()
	return exited
}

// actorOwned: clients set keys and read a copy of the state made by the actor.
func actorOwned() {
	requests := make(chan actorRequest)
	finished := startActor(requests, false)
	setter := make(chan struct{})
	go func() {
		for k := 0; k < 4; k++ {
			requests <- actorRequest{key: 20 + k, value: k}
		}
		close(setter)
	}()
	<-setter
	reply := make(chan map[int]int)
	requests <- actorRequest{snapshot: reply}
	copied := <-reply
	_ = copied[21]
	copied[30] = 30
	close(requests)
	<-finished
}

// actorLeaksMap: the actor hands out its own map; a client reads it while the actor, later, writes
// it for another client's request.
func actorLeaksMap() {
	requests := make(chan actorRequest)
	finished := startActor(requests, true)
	reply := make(chan map[int]int)
	requests <- actorRequest{snapshot: reply}
	leaked := <-reply
	setter := make(chan struct{})
	go func() {
		requests <- actorRequest{key: 5, value: 50}
		close(setter)
	}()
	pause()
	_ = leaked[5] // race:actor_leaks_map
	<-setter
	close(requests)
	<-finished
}
