// locked: the same two-goroutine workload as conflict, correctly synchronised with a
// sync.RWMutex. mapwatch must find nothing here.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

var (
	mu     sync.RWMutex
	shared = make(map[int]int)
)

//go:noinline
func writer(base, n int) {
	for i := 0; i < n; i++ {
		mu.Lock()
		shared[(base+i)%4096] = i
		mu.Unlock()
	}
}

//go:noinline
func reader(n int) (sum int) {
	for i := 0; i < n; i++ {
		mu.RLock()
		sum += shared[i%4096]
		mu.RUnlock()
	}
	return sum
}

func main() {
	n := 200000
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); writer(0, n) }()
	go func() { defer wg.Done(); writer(1000, n) }()
	go func() { defer wg.Done(); reader(n) }()
	wg.Wait()
	fmt.Println("entries", len(shared))
}
