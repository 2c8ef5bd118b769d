// service: an order-status HTTP service written the usual way, for measuring what watching
// costs on a real net/http server. The store is a map under an RWMutex; per-route request
// counts are a map under a Mutex; each request makes a few map operations of its own on top
// of what net/http does.
//
//	GET /orders/ID   the order's status (404 if unknown)
//	PUT /orders/ID   set its status to the request body
//	GET /stats       requests per route
//
// With -planted-race, every GET also records the order as recently viewed in a map guarded by
// a hand-made spin lock whose unlock is a plain store: the accesses never overlap in time (the
// runtime never throws), but nothing orders them for the memory model: a race on the hottest
// path, for tests that must find it.
//
// Usage: service -addr 127.0.0.1:0 -addr-file FILE -orders N [-planted-race]
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

type store struct {
	mu       sync.RWMutex
	statuses map[int]string
}

func (s *store) get(id int) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.statuses[id]
	return st, ok
}

func (s *store) set(id int, status string) {
	s.mu.Lock()
	s.statuses[id] = status
	s.mu.Unlock()
}

type counters struct {
	mu   sync.Mutex
	hits map[string]int
}

func (c *counters) add(route string) {
	c.mu.Lock()
	c.hits[route]++
	c.mu.Unlock()
}

func (c *counters) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.hits))
	for k, v := range c.hits {
		out[k] = v
	}
	return out
}

// recent is the planted race: its lock's unlock is a plain store, which orders nothing.
type recent struct {
	locked int32
	viewed map[int]int
}

func (r *recent) add(id int) {
	for !atomic.CompareAndSwapInt32(&r.locked, 0, 1) {
	}
	r.viewed[id%64]++
	r.locked = 0
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	planted := flag.Bool("planted-race", false, "record recently viewed orders racily")
	addrFile := flag.String("addr-file", "", "write the address listened on to this file")
	orders := flag.Int("orders", 10000, "orders in the store")
	flag.Parse()

	s := &store{statuses: make(map[int]string, *orders)}
	for i := 0; i < *orders; i++ {
		s.statuses[i] = "placed"
	}
	c := &counters{hits: make(map[string]int)}
	views := &recent{viewed: make(map[int]int)}

	mux := http.NewServeMux()
	mux.HandleFunc("/orders/", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/orders/"))
		if err != nil {
			http.Error(w, "bad order id", http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodGet:
			c.add("get")
			if *planted {
				views.add(id)
			}
			st, ok := s.get(id)
			if !ok {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, st)
		case http.MethodPut:
			c.add("put")
			body, err := io.ReadAll(io.LimitReader(r.Body, 64))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			s.set(id, string(body))
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		for route, n := range c.snapshot() {
			fmt.Fprintf(w, "%s %d\n", route, n)
		}
	})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(ln.Addr().String()), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Fatal(http.Serve(ln, mux))
}
