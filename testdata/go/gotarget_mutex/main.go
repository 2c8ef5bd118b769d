// gotarget_mutex guards a map with a sync.Mutex, whose Lock/Unlock the compiler inlines into
// the caller (only lockSlow/unlockSlow stay calls): the gotarget tests look for these inlined
// sites in DWARF.
package main

import (
	"fmt"
	"sync"
)

var (
	mu     sync.Mutex
	counts = map[string]int{}
)

func bump(key string) {
	mu.Lock() // LOCK-SITE
	counts[key]++
	mu.Unlock()
}

func main() {
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				bump("k")
			}
		}()
	}
	wg.Wait()
	fmt.Println(counts["k"])
}
