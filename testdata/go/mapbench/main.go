// mapbench times map operations from inside the program, so the cost of probes on them can be
// measured without counting process start-up: "OP ns/op N" on stdout.
//
// Usage: mapbench [read|write] [ops]
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

var sink int

func main() {
	op, n := "read", 5_000_000
	if len(os.Args) > 1 {
		op = os.Args[1]
	}
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	m := make(map[int]int, 1024)
	for i := 0; i < 1024; i++ {
		m[i] = i
	}
	start := time.Now()
	switch op {
	case "read":
		for i := 0; i < n; i++ {
			sink += m[i&1023]
		}
	case "write":
		for i := 0; i < n; i++ {
			m[i&1023] = i
		}
	default:
		fmt.Fprintln(os.Stderr, "usage: mapbench [read|write] [ops]")
		os.Exit(2)
	}
	elapsed := time.Since(start)
	fmt.Printf("%s ns/op %.1f\n", op, float64(elapsed.Nanoseconds())/float64(n))
}
