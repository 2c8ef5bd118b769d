// allops performs every class of map operation a known number of times on maps whose runtime
// addresses it prints first (%p of a map is its header pointer), so tests can match probe events
// against Go's own view: "map NAME 0xADDR goid N" lines, then the operations, then "done". The
// map "relay" is written by short-lived goroutines one after another, each with its goid as key.
package main

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"strconv"
	"sync"

	"mapguard.test/internal/goid"
)

type big [2048]byte // values over 1 KiB read through mapaccess1_fat

var sink int

func report(name string, m any, g uint64) {
	fmt.Printf("map %s %p goid %d\n", name, m, g)
}

func main() {
	n := 100
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	g := goid.Get()

	ints := make(map[int]int)          // makemap_small; *_fast64
	strs := make(map[string]int, 1000) // makemap with a hint; *_faststr
	small := make(map[int32]int)       // *_fast32
	arrays := make(map[[2]int]int)     // generic mapaccess1/2, mapassign, mapdelete
	ptrs := make(map[*int]int)         // mapassign_fast64ptr
	fat := make(map[int]big)           // mapaccess1_fat
	for name, m := range map[string]any{"ints": ints, "strs": strs, "small": small, "arrays": arrays, "ptrs": ptrs, "fat": fat} {
		report(name, m, g)
	}

	keys := make([]string, n)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	cells := make([]int, n)
	for i := 0; i < n; i++ {
		ints[i] = i
		strs[keys[i]] = i
		small[int32(i)] = i
		arrays[[2]int{i, i}] = i
		ptrs[&cells[i]] = i
	}
	for i := 0; i < n; i++ {
		sink += ints[i] + strs[keys[i]] + int(small[int32(i)]) + arrays[[2]int{i, i}] + ptrs[&cells[i]]
		v, ok := ints[i]
		if ok {
			sink += v
		}
		b := fat[i]
		sink += int(b[0])
	}
	for k, v := range ints {
		sink += k + v
	}
	// maps.Clone makes its map without makemap on Swiss maps.
	clone := maps.Clone(ints)
	report("clone", clone, g)
	sink += clone[1]
	for i := 0; i < n/2; i++ {
		delete(ints, i)
		delete(strs, keys[i])
		delete(small, int32(i))
		delete(arrays, [2]int{i, i})
	}
	clear(ints)

	// Another goroutine's writes carry another goid.
	other := make(map[int]int)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		report("other", other, goid.Get())
		for i := 0; i < n; i++ {
			other[i] = i
		}
	}()
	wg.Wait()

	// Goroutines one after another, each writing its own goid as the key: each takes over
	// the g its predecessor left, and must not be taken for it. The loop yields to each new
	// goroutine (which runs next on this thread) and synchronises with none of them, so that
	// nothing runs between one's accesses and the next one's but their creation.
	relay := make(map[uint64]int)
	report("relay", relay, g)
	var mu sync.Mutex
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer wg.Done()
			mu.Lock()
			relay[goid.Get()] = i
			mu.Unlock()
		}()
		runtime.Gosched()
	}
	wg.Wait()
	fmt.Printf("done %d\n", sink)
}
