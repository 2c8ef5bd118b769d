// Goroutine creation and channels: what a `go` statement, a send, a receive, a close and a select
// order, and what they leave unordered.
package main

import "time"

// spawnParentWrites: everything the parent did before `go` happens before the child starts.
func spawnParentWrites() {
	m := make(map[int]int)
	fill(m)
	m[10] = 10
	done := make(chan struct{})
	go func() {
		_ = m[10]
		m[11] = 11
		close(done)
	}()
	<-done
}

// spawnChildWrites: nothing orders the child's write before the parent's later read; the join
// comes after the read.
func spawnChildWrites() {
	m := make(map[int]int)
	fill(m)
	done := make(chan struct{})
	go func() {
		m[10] = 10 // race:spawn_child_writes
		close(done)
	}()
	pause()
	_ = m[10] // race:spawn_child_writes
	<-done
}

// chanUnbufferedHandoff: the producer's writes happen before its send, which happens before the
// consumer's receive completes.
func chanUnbufferedHandoff() {
	m := make(map[int]int)
	ready := make(chan struct{})
	go func() {
		fill(m)
		m[10] = 10
		ready <- struct{}{}
	}()
	<-ready
	_ = m[10]
	m[11] = 11
}

// chanUnbufferedReverse: on an unbuffered channel the receive happens before the send completes,
// so the receiver's write before its receive is ordered before the sender's write after its send.
func chanUnbufferedReverse() {
	m := make(map[int]int)
	fill(m)
	token := make(chan int)
	received := make(chan struct{})
	go func() {
		m[10] = 10
		<-token
		close(received)
	}()
	pause()
	token <- 1
	m[10] = 20
	<-received
}

// chanUnbufferedWriteAfterSend: the sender writes after its send; the receiver reads after its
// receive. The rendezvous orders what came before it, not what follows on either side.
func chanUnbufferedWriteAfterSend() {
	m := make(map[int]int)
	fill(m)
	token := make(chan int)
	done := make(chan struct{})
	go func() {
		token <- 1
		pause()
		m[3] = 30 // race:chan_unbuffered_write_after_send
		close(done)
	}()
	<-token
	_ = m[3] // race:chan_unbuffered_write_after_send
	<-done
}

// chanBufferedHandoff: a producer makes and fills one map per batch and sends it on a buffered
// channel, never touching it again; the consumer reads each map it receives.
func chanBufferedHandoff() {
	batches := make(chan map[int]int, 2)
	go func() {
		for b := 0; b < 2; b++ {
			m := make(map[int]int)
			fill(m)
			m[100] = b
			batches <- m
		}
		close(batches)
	}()
	for m := range batches {
		_ = m[100]
		for k, v := range m {
			_, _ = k, v
		}
	}
}

// chanBufferedWriteAfterSend: a send on a buffered channel does not wait for the receiver, and a
// write after it is ordered with nothing the receiver does. (The elements are ints, not struct{}:
// for zero-size elements -race merges all buffer slots into one and would order too much.)
func chanBufferedWriteAfterSend() {
	m := make(map[int]int)
	fill(m)
	token := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		token <- 1
		pause()
		delete(m, 4) // race:chan_buffered_write_after_send
		close(done)
	}()
	<-token
	_, _ = m[4] // race:chan_buffered_write_after_send
	<-done
}

// chanClose: a close happens before a receive that returns because the channel is closed.
func chanClose() {
	m := make(map[int]int)
	done := make(chan struct{})
	go func() {
		fill(m)
		close(done)
	}()
	<-done
	_ = m[5]
	delete(m, 5)
}

// chanWriteAfterClose: the worker keeps writing after the close the reader waited for.
func chanWriteAfterClose() {
	m := make(map[int]int)
	fill(m)
	closed := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		close(closed)
		pause()
		m[5] = 50 // race:chan_write_after_close
		close(exited)
	}()
	<-closed
	_ = m[5] // race:chan_write_after_close
	<-exited
}

// selectHandoff: two workers fill their own maps and offer them in a select with a send case;
// the parent selects over both channels and reads each map it receives.
func selectHandoff() {
	left := make(chan map[int]int)
	right := make(chan map[int]int)
	quit := make(chan struct{})
	worker := func(out chan map[int]int, base int) {
		m := make(map[int]int)
		fill(m)
		m[100] = base
		select {
		case out <- m:
		case <-quit:
		}
	}
	go worker(left, 1)
	go worker(right, 2)
	for got := 0; got < 2; got++ {
		var m map[int]int
		select {
		case m = <-left:
		case m = <-right:
		}
		_ = m[100]
		m[101] = 101
	}
	close(quit)
}

// selectDefault: a non-blocking receive that finds nothing orders nothing; reading anyway races
// with the worker's write. The worker sends only after the read, so the select never receives.
func selectDefault() {
	m := make(map[int]int)
	fill(m)
	ready := make(chan struct{})
	proceed := make(chan struct{})
	go func() {
		m[7] = 70 // race:select_default
		<-proceed
		ready <- struct{}{}
	}()
	pause()
	select {
	case <-ready:
		panic("select_default: the worker sends only after proceed")
	default:
	}
	_ = m[7] // race:select_default
	close(proceed)
	<-ready
}

// semaphore: a buffered channel of capacity 1 as a lock: the k-th receive (release) happens
// before the (k+1)-th send (acquire) completes, so the critical sections are ordered.
func semaphore() {
	m := make(map[int]int)
	fill(m)
	sem := make(chan struct{}, 1)
	done := make(chan struct{})
	for w := 0; w < 2; w++ {
		go func(w int) {
			sem <- struct{}{}
			m[w] += 1
			_ = m[8]
			<-sem
			done <- struct{}{}
		}(w)
	}
	<-done
	<-done
}

// semaphoreTooWide: with capacity 2 both workers acquire at once: the first release happens
// before only the third acquire, which never comes. (int elements: see chanBufferedWriteAfterSend.)
func semaphoreTooWide() {
	m := make(map[int]int)
	fill(m)
	sem := make(chan int, 2)
	done := make(chan struct{})
	go func() {
		sem <- 1
		m[1] = 10 // race:semaphore_too_wide
		<-sem
		done <- struct{}{}
	}()
	go func() {
		pause()
		sem <- 2
		m[2] = 20 // race:semaphore_too_wide
		<-sem
		done <- struct{}{}
	}()
	<-done
	<-done
}

// chanBufferedBlockedSend: the k-th receive happens before the (k+C)-th send completes. With
// capacity 2, the main goroutine's third send waits for the worker's first receive, so what the
// worker did before that receive is ordered before everything after the send.
func chanBufferedBlockedSend() {
	m := make(map[int]int)
	fill(m)
	ch := make(chan int, 2)
	go func() {
		pause()
		m[1] = 10
		<-ch
	}()
	ch <- 1
	ch <- 2
	ch <- 3 // waits for the worker's receive: the buffer is full
	_ = m[1]
}

// chanBufferedAfterHandoff: the first receive orders the third send (capacity 2) even when the
// second value is handed straight to a waiting receiver in between, which (outside -race builds)
// leaves the runtime's slot indices where they were. The waiting receiver knows nothing of the
// first receiver's write: it waits for the first receive by polling len(ch), which synchronises
// nothing.
func chanBufferedAfterHandoff() {
	m := make(map[int]int)
	fill(m)
	ch := make(chan int, 2)
	ch <- 1
	go func() {
		m[1] = 10
		<-ch // the first receive
	}()
	go func() {
		for len(ch) > 0 {
			time.Sleep(time.Millisecond)
		}
		<-ch // waits, and is handed the second value
	}()
	pause()
	ch <- 2 // to the waiting receiver
	ch <- 3 // completes after the first receive
	_ = m[1]
}

// chanSemaphoreContended: a capacity-1 semaphore of ints (one clock per slot, unlike struct{})
// taken by four goroutines at once, so senders queue behind one another: each critical section
// is ordered after the previous one, whichever path each send took.
func chanSemaphoreContended() {
	m := make(map[int]int)
	fill(m)
	sem := make(chan int, 1)
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func(w int) {
			for i := 0; i < 500; i++ {
				sem <- w
				m[i%8] += w
				<-sem
			}
			done <- struct{}{}
		}(w)
	}
	for w := 0; w < 4; w++ {
		<-done
	}
}

// chanBufferedRecvThenSend: a receive orders only the send C later. With capacity 2 the second
// send finds a free slot without waiting, so the receiver's write before its receive is ordered
// with nothing the sender does after it. (int elements: see chanBufferedWriteAfterSend.)
func chanBufferedRecvThenSend() {
	m := make(map[int]int)
	fill(m)
	ch := make(chan int, 2)
	ch <- 1
	go func() {
		m[1] = 10 // race:chan_buffered_recv_then_send
		<-ch
	}()
	pause()
	ch <- 2
	_ = m[1] // race:chan_buffered_recv_then_send
}

// chanTryAcquireTooWide: semaphoreTooWide with a non-blocking acquire (a select with a default):
// it orders no more than a blocking send would.
func chanTryAcquireTooWide() {
	m := make(map[int]int)
	fill(m)
	sem := make(chan int, 2)
	done := make(chan struct{})
	acquire := func(v int) {
		select {
		case sem <- v:
		default:
			panic("chan_try_acquire_too_wide: the semaphore has room")
		}
	}
	go func() {
		acquire(1)
		m[1] = 10 // race:chan_try_acquire_too_wide
		<-sem
		done <- struct{}{}
	}()
	go func() {
		pause()
		acquire(2)
		m[2] = 20 // race:chan_try_acquire_too_wide
		<-sem
		done <- struct{}{}
	}()
	<-done
	<-done
}

// chanPollClosed: a non-blocking receive that finds the channel closed (which it can see without
// taking the channel's lock) is ordered after the close, like a blocking one.
func chanPollClosed() {
	m := make(map[int]int)
	finished := make(chan int, 1)
	go func() {
		fill(m)
		close(finished)
	}()
	for {
		select {
		case <-finished:
			_ = m[1]
			m[2] = 20
			return
		default:
			time.Sleep(time.Millisecond)
		}
	}
}
