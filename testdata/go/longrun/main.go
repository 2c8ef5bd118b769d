// longrun: a well-behaved program that works on maps for a while and prints a deterministic
// checksum every round, so a test can attach and detach mid-run and compare its output with
// an unwatched run's. Prints "ready" first so the test knows it is running.
//
// Usage: longrun [rounds] [round-ms]
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func round(r int) uint64 {
	m := make(map[uint64]uint64)
	var sum uint64
	for i := uint64(0); i < 20000; i++ {
		m[i*2654435761%100003] = i + uint64(r)
	}
	for k, v := range m {
		sum += k ^ v
	}
	for i := uint64(0); i < 20000; i += 3 {
		delete(m, i*2654435761%100003)
	}
	return sum + uint64(len(m))
}

func main() {
	rounds, ms := 40, 100
	if len(os.Args) > 1 {
		rounds, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		ms, _ = strconv.Atoi(os.Args[2])
	}
	fmt.Println("ready")
	for r := 0; r < rounds; r++ {
		fmt.Printf("round %d %d\n", r, round(r))
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	fmt.Println("finished")
}
