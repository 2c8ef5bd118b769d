// Package goid reads the current goroutine's id the way a test can trust: from runtime.Stack's
// own header line ("goroutine 7 [running]:"), the same id mapwatch reads from runtime.g.
package goid

import (
	"runtime"
	"strconv"
	"strings"
)

// Get returns the id of the calling goroutine.
func Get() uint64 {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	fields := strings.Fields(strings.TrimPrefix(string(buf[:n]), "goroutine "))
	id, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		panic(err)
	}
	return id
}
