//go:build go1.23

// Coroutines (Go 1.23+): iter.Pull runs the iterator on a goroutine of its own that takes turns
// with the caller; each switch orders what one side did before what the other does next.
package main

import (
	"iter"
	"time"
)

func init() {
	corpus = append(corpus,
		corpusCase{"iter_pull_turns", clean, iterPullTurns},
		corpusCase{"iter_pull_stop", clean, iterPullStop},
		corpusCase{"iter_pull_unjoined_goroutine", racy, iterPullUnjoinedGoroutine},
	)
}

// iterPullTurns: the iterator writes each entry, the caller updates it, the iterator reads it
// back on its next turn.
func iterPullTurns() {
	m := map[int]int{}
	next, stop := iter.Pull(func(yield func(int) bool) {
		for i := 0; i < 3; i++ {
			m[i] = i
			if !yield(i) {
				return
			}
			_ = m[i]
		}
	})
	defer stop()
	for {
		k, ok := next()
		if !ok {
			break
		}
		m[k]++
	}
}

// iterPullStop: the iterator's deferred cleanup, run by stop, writes what the caller reads after.
func iterPullStop() {
	m := map[string]int{}
	next, stop := iter.Pull(func(yield func(int) bool) {
		defer func() { m["closed"] = 1 }()
		for i := 0; ; i++ {
			m["last"] = i
			if !yield(i) {
				return
			}
		}
	})
	next()
	next()
	stop()
	_ = m["closed"]
	m["last"] = -1
}

// iterPullUnjoinedGoroutine: the iterator starts a goroutine that writes the map and yields
// without waiting for it: the switch orders the iterator's past, not that goroutine's.
func iterPullUnjoinedGoroutine() {
	m := map[int]int{}
	next, stop := iter.Pull(func(yield func(int) bool) {
		go func() {
			m[1] = 1 // race:iter_pull_unjoined_goroutine
		}()
		time.Sleep(20 * time.Millisecond)
		yield(1)
	})
	defer stop()
	next()
	_, _ = m[1] // race:iter_pull_unjoined_goroutine
}
