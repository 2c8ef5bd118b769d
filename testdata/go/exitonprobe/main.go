// exitonprobe: works on a map until a duty-cycled watch takes its map-access probes off, then
// exits the moment the first of them is back, so a test can make a target end while mapwatch
// is still attaching the others. With the argument "first" (for `mapwatch attach`), it prints
// "ready" and exits the moment the first probe appears.
//
// It sees probes in its own code: the kernel writes a breakpoint into the process's copy of
// every probed page, so the running text differs from the executable's file where a probe is.
package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"unsafe"
)

// chunk is the granularity of the comparison.
const chunk = 64

// The main goroutine stays on the process's first thread, whose exit takes /proc/PID/exe
// with it at once (from another thread, the exit waits for the first one to be killed).
func init() {
	runtime.LockOSThread()
}

func main() {
	exe, err := elf.Open("/proc/self/exe")
	if err != nil {
		panic(err)
	}
	text := exe.Section(".text")
	want, err := text.Data()
	if err != nil {
		panic(err)
	}
	// Where .text is in memory: main.main is at the same distance from it as in the file (the
	// load address moves both, when built as PIE).
	syms, err := exe.Symbols()
	if err != nil {
		panic(err)
	}
	var have []byte
	for _, s := range syms {
		if s.Name == "main.main" {
			start := unsafe.Add(reflect.ValueOf(main).UnsafePointer(), int64(text.Addr)-int64(s.Value))
			have = unsafe.Slice((*byte)(start), len(want))
		}
	}
	probed := func(c int) bool {
		at, end := c*chunk, min((c+1)*chunk, len(want))
		return !bytes.Equal(have[at:end], want[at:end])
	}
	probedChunks := func() map[int]bool {
		set := map[int]bool{}
		for c := 0; c*chunk < len(want); c++ {
			if probed(c) {
				set[c] = true
			}
		}
		return set
	}

	if len(os.Args) > 1 && os.Args[1] == "first" {
		fmt.Println("ready")
		for {
			for c := 0; c*chunk < len(want); c++ {
				if probed(c) {
					fmt.Println("probed: exiting")
					os.Exit(0)
				}
			}
		}
	}

	m := map[int]int{}
	// Every probe is on from the first instruction; work until some came off.
	start := probedChunks()
	var off []int
	for len(off) == 0 {
		for i := 0; i < 1000; i++ {
			m[i%100] += i
		}
		now := probedChunks()
		for c := range start {
			if !now[c] {
				off = append(off, c)
			}
		}
	}
	fmt.Println("probes off")
	// Watch only where probes came off: the first one back ends the process.
	for {
		for _, c := range off {
			if probed(c) {
				fmt.Println("probes coming back: exiting")
				os.Exit(0)
			}
		}
	}
}
