// orders: a payment-style order-status service with the classic Go bug: every handler
// shares one map of order statuses and nothing locks it. Under concurrent requests it
// silently loses updates and, sooner or later, the runtime kills it with
// "fatal error: concurrent map read and map write" — printing only one side of the story.
//
// Endpoints:
//
//	POST /orders?id=ID            create an order (status "created")
//	POST /orders/pay?id=ID        pay it: get-then-set "created" -> "paid"
//	GET  /orders/status?id=ID     read its status
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

// Store keeps order statuses. The bug: no mutex around the map.
type Store struct {
	statuses map[string]string
}

func NewStore() *Store {
	return &Store{statuses: make(map[string]string, 64)}
}

//go:noinline
func (s *Store) Status(id string) (string, bool) {
	st, ok := s.statuses[id] // read, concurrent with SetStatus in another handler
	return st, ok
}

//go:noinline
func (s *Store) SetStatus(id, status string) {
	s.statuses[id] = status // write, from many handlers at once
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	flag.Parse()
	store := NewStore()
	mux := http.NewServeMux()
	mux.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		store.SetStatus(id, "created")
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/orders/pay", func(w http.ResponseWriter, r *http.Request) {
		id := r.URL.Query().Get("id")
		if st, ok := store.Status(id); !ok || st != "created" {
			http.Error(w, "not payable: "+st, http.StatusConflict)
			return
		}
		store.SetStatus(id, "paid")
		fmt.Fprintln(w, "paid")
	})
	mux.HandleFunc("/orders/status", func(w http.ResponseWriter, r *http.Request) {
		st, ok := store.Status(r.URL.Query().Get("id"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, st)
	})
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "orders: listening on http://%s\n", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}
