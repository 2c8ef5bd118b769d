// conflict: two goroutines use one map with no lock until the Go runtime kills the program
// with "fatal error: concurrent map writes" (or "... read and map write"). Go prints one
// goroutine's stack; mapwatch must report both.
//
// Usage: conflict [write-write|read-write]
package main

import (
	"fmt"
	"os"
	"sync"
	"time"
)

var shared = make(map[int]int)

//go:noinline
func writer(base int, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		shared[(base+i)%4096] = i // the racing write
	}
}

//go:noinline
func reader(stop <-chan struct{}) (sum int) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return sum
		default:
		}
		sum += shared[i%4096] // the racing read
	}
}

func main() {
	mode := "write-write"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); writer(0, stop) }()
	go func() {
		defer wg.Done()
		if mode == "read-write" {
			reader(stop)
		} else {
			writer(1000, stop)
		}
	}()
	// Without a crash within this time the map was lucky; the test retries.
	time.Sleep(20 * time.Second)
	close(stop)
	wg.Wait()
	fmt.Println("no crash")
}
