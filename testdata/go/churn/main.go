// churn: what production programs do to a tracer, while working on maps under a lock:
// hundreds of thousands of goroutines started and ended, thousands of OS threads started and
// ended (a goroutine that exits locked to its thread takes the thread with it), other
// programs forked and executed, and the heap grown by hundreds of MiB. Prints "churn done"
// and a checksum of the map at the end.
//
// With -hang it prints "ready" once its pid is in -pid-file and works on its maps until
// killed, for tests that kill it mid-watch.
//
// Usage: churn [-goroutines N] [-threads N] [-execs N] [-heap-mib N] [-hang -pid-file F]
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
)

type store struct {
	mu sync.Mutex
	m  map[int]int
}

func (s *store) add(k, v int) {
	s.mu.Lock()
	s.m[k%1024] += v
	s.mu.Unlock()
}

// inWaves runs work(i) for every i in [0, n) on its own goroutine, wave goroutines at a time,
// each wave waited for.
func inWaves(n, wave int, work func(i int)) {
	for start := 0; start < n; start += wave {
		var wg sync.WaitGroup
		for i := start; i < start+wave && i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				work(i)
			}(i)
		}
		wg.Wait()
	}
}

func main() {
	goroutines := flag.Int("goroutines", 200000, "goroutines to start and end")
	threads := flag.Int("threads", 2000, "OS threads to start and end")
	execs := flag.Int("execs", 20, "programs to fork and execute")
	heapMiB := flag.Int("heap-mib", 512, "MiB to grow the heap by")
	hang := flag.Bool("hang", false, "work on the maps until killed")
	pidFile := flag.String("pid-file", "", "with -hang: write the pid here")
	flag.Parse()

	s := &store{m: make(map[int]int)}
	if *hang {
		if err := os.WriteFile(*pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			log.Fatal(err)
		}
		fmt.Println("ready")
		for round := 0; ; round++ {
			inWaves(64, 64, func(i int) { s.add(round+i, 1) })
		}
	}

	// Goroutines, in waves so that a few thousand live at a time.
	inWaves(*goroutines, 5000, func(i int) { s.add(i, 1) })

	// Threads: each goroutine exits locked to its thread, which then ends.
	inWaves(*threads, 100, func(i int) {
		runtime.LockOSThread()
		s.add(i, 2)
	})

	// Fork and exec.
	for i := 0; i < *execs; i++ {
		out, err := exec.Command("/bin/echo", strconv.Itoa(i)).Output()
		if err != nil || string(out) != strconv.Itoa(i)+"\n" {
			log.Fatalf("exec %d: %q %v", i, out, err)
		}
		s.add(i, 3)
	}

	// Heap: touched, so it is really there.
	var heap [][]byte
	for i := 0; i < *heapMiB; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = byte(i)
		}
		heap = append(heap, b)
		s.add(i, len(heap))
	}

	sum := 0
	s.mu.Lock()
	for k, v := range s.m {
		sum += k * v
	}
	s.mu.Unlock()
	fmt.Println("churn done", sum, len(heap))
}
