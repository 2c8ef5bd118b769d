// orders-load drives the orders service with concurrent clients over real HTTP: each client
// creates orders, pays them and reads their status. It stops after -duration, or as soon as
// the service is gone (the runtime may kill it), and prints what it did.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "service address")
	clients := flag.Int("clients", 8, "concurrent clients")
	duration := flag.Duration("duration", 10*time.Second, "how long to drive load")
	wait := flag.Duration("wait", 10*time.Second, "how long to wait for the service to come up")
	flag.Parse()
	base := "http://" + *addr

	deadline := time.Now().Add(*wait)
	for {
		resp, err := http.Get(base + "/orders/status?id=probe")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "orders-load: service at %s did not come up: %v\n", *addr, err)
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}

	var requests, failures atomic.Int64
	var gone atomic.Bool
	stop := time.Now().Add(*duration)
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			client := &http.Client{Timeout: 2 * time.Second}
			do := func(method, path string) {
				req, _ := http.NewRequest(method, base+path, nil)
				resp, err := client.Do(req)
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					if failures.Load() > 20 {
						gone.Store(true)
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			for i := 0; time.Now().Before(stop) && !gone.Load(); i++ {
				id := fmt.Sprintf("c%d-%d", c, i%200)
				do("POST", "/orders?id="+id)
				do("POST", "/orders/pay?id="+id)
				do("GET", "/orders/status?id="+id)
			}
		}(c)
	}
	wg.Wait()
	status := "done"
	if gone.Load() {
		status = "service gone"
	}
	fmt.Fprintf(os.Stderr, "orders-load: %s: %d requests, %d failed\n", status, requests.Load(), failures.Load())
}
