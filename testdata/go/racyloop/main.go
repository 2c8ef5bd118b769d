// racyloop: two goroutines write one map in turns, 25 ms apart, with nothing ordering them: a
// race on every round that (almost surely) never overlaps in time, so the Go runtime never
// throws and only happens-before analysis finds it. Runs for a while, for tests that watch
// live metrics.
//
// Usage: racyloop [rounds] [round-ms]
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	rounds, ms := 100, 50
	if len(os.Args) > 1 {
		rounds, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		ms, _ = strconv.Atoi(os.Args[2])
	}
	period := time.Duration(ms) * time.Millisecond
	status := make(map[int]string)
	start := time.Now()
	writer := func(offset time.Duration, value string) {
		for r := 0; r < rounds; r++ {
			time.Sleep(time.Until(start.Add(time.Duration(r)*period + offset)))
			status[r%8] = value
		}
	}
	fmt.Println("ready")
	go writer(0, "paid")
	writer(period/2, "shipped")
	fmt.Println("finished", len(status))
}
