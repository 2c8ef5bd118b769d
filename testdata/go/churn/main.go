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
		for i := 0; ; i++ {
			var wg sync.WaitGroup
			for g := 0; g < 64; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					s.add(i+g, 1)
				}(g)
			}
			wg.Wait()
		}
	}

	// Goroutines, in waves so that a few thousand live at a time.
	for done := 0; done < *goroutines; done += 5000 {
		var wg sync.WaitGroup
		for g := 0; g < 5000; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				s.add(done+g, 1)
			}(g)
		}
		wg.Wait()
	}

	// Threads: each goroutine exits locked to its thread, which then ends.
	for done := 0; done < *threads; done += 100 {
		var wg sync.WaitGroup
		for t := 0; t < 100; t++ {
			wg.Add(1)
			go func(t int) {
				defer wg.Done()
				runtime.LockOSThread()
				s.add(done+t, 2)
			}(t)
		}
		wg.Wait()
	}

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
