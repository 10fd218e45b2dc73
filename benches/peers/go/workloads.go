package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// spawnJoin starts n goroutines that each hand back their index, then waits for all of them (all
// n live at once) and sums what they handed back. A goroutine has no join handle: each writes
// its result into its own slot and a WaitGroup is the join.
func spawnJoin(n uint64) uint64 {
	results := make([]uint64, n)
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := uint64(0); i < n; i++ {
		go func(i uint64) {
			results[i] = i
			wg.Done()
		}(i)
	}
	wg.Wait()
	sum := uint64(0)
	for _, v := range results {
		sum += v
	}
	return sum
}

// skynetTree is the classic Go skynet: a leaf sends its number to its parent's channel, an
// inner node starts its 10 children on a channel of its own and sums what arrives.
func skynetTree(leaves uint64) uint64 {
	c := make(chan uint64)
	go skynetNode(c, 0, leaves)
	return <-c
}

func skynetNode(parent chan<- uint64, num, size uint64) {
	if size == 1 {
		parent <- num
		return
	}
	step := size / 10
	children := make(chan uint64)
	for i := uint64(0); i < 10; i++ {
		go skynetNode(children, num+i*step, step)
	}
	sum := uint64(0)
	for i := 0; i < 10; i++ {
		sum += <-children
	}
	parent <- sum
}

// switches: two goroutines alternate runtime.Gosched, n/2 times each (GOMAXPROCS 1): time of n
// switches. The partner is started inside the timed span, as in the Rust bodies.
func switches(n uint64) time.Duration {
	perSide := (n + 1) / 2
	start := time.Now()
	done := make(chan struct{})
	go func() {
		for i := uint64(0); i < perSide; i++ {
			runtime.Gosched()
		}
		close(done)
	}()
	for i := uint64(0); i < perSide; i++ {
		runtime.Gosched()
	}
	<-done
	return time.Since(start)
}

// pingPong: the driver sends a number on one channel, an echo goroutine sends it back on another,
// iters times. Go has no unbounded channel; with one message in flight a buffer of one never
// blocks a send, which is what the unbounded channels of the other peers give.
func pingPong(iters uint64) time.Duration {
	to := make(chan uint64, 1)
	back := make(chan uint64, 1)
	done := make(chan struct{})
	go func() {
		for v := range to {
			back <- v
		}
		close(done)
	}()
	start := time.Now()
	for i := uint64(0); i < iters; i++ {
		to <- i
		if v := <-back; v != i {
			panic("ping-pong: wrong echo")
		}
	}
	elapsed := time.Since(start)
	close(to)
	<-done
	return elapsed
}

// mutexContention: SIZE goroutines share a fixed total of increments of one counter under a
// sync.Mutex (GOMAXPROCS 2); per increment.
func mutexContention(o opts) {
	total := uint64(100000)
	if o.quick {
		total = 10000
	}
	tasks := o.size
	perTask := total / tasks
	if perTask < 1 {
		perTask = 1
	}
	body := func() time.Duration {
		return timed(func() {
			var m sync.Mutex
			count := uint64(0)
			var wg sync.WaitGroup
			wg.Add(int(tasks))
			for t := uint64(0); t < tasks; t++ {
				go func() {
					for i := uint64(0); i < perTask; i++ {
						m.Lock()
						count++
						m.Unlock()
					}
					wg.Done()
				}()
			}
			wg.Wait()
			if count != tasks*perTask {
				panic("mutex: lost increments")
			}
		})
	}
	ns := bestNs(o.reps, body)
	emit("ns", ns/float64(tasks*perTask))
}

// status reads kB fields of /proc/self/status.
func status(names ...string) []uint64 {
	out := make([]uint64, len(names))
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		for i, name := range names {
			if rest := strings.TrimPrefix(s.Text(), name+":"); rest != s.Text() {
				v, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				out[i] = v
			}
		}
	}
	return out
}

// memory: SIZE goroutines each time.Sleep so long that all are asleep at once (1 s + 4 µs × N,
// 200 ms quick; or --sleep-ms); figure = (peak RSS − RSS before) / the most asleep at once, the
// peak being VmHWM after a reset (clear_refs 5), as crowd.rs does for the Rust peers.
func memory(o opts) {
	n := o.size
	base := time.Second
	if o.quick {
		base = 200 * time.Millisecond
	}
	dur := base + time.Duration(4*n)*time.Microsecond
	if o.sleepMs > 0 {
		dur = time.Duration(o.sleepMs) * time.Millisecond
	}
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		panic("cannot reset VmHWM: " + err.Error())
	}
	rss := status("VmRSS")[0]
	var sleeping, maxSleeping int64
	var wg sync.WaitGroup
	wg.Add(int(n))
	start := time.Now()
	for i := uint64(0); i < n; i++ {
		go func() {
			now := atomic.AddInt64(&sleeping, 1)
			for {
				max := atomic.LoadInt64(&maxSleeping)
				if now <= max || atomic.CompareAndSwapInt64(&maxSleeping, max, now) {
					break
				}
			}
			time.Sleep(dur)
			atomic.AddInt64(&sleeping, -1)
			wg.Done()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	asleep := atomic.LoadInt64(&maxSleeping)
	if asleep < 1 {
		asleep = 1
	}
	hwm := status("VmHWM")[0]
	grown := uint64(0)
	if hwm > rss {
		grown = hwm - rss
	}
	if uint64(asleep) < n {
		note("go: at most %d of %d asleep at once; the figure divides by that, so it also carries the ones not yet started or already done", asleep, n)
	}
	kib := float64(grown) / float64(asleep)
	if o.series == "sleepers" {
		emit("kib", kib, "wall_s", wall.Seconds(), "asleep", float64(asleep), "peak_mib", float64(hwm)/1024)
	} else {
		emit("kib", kib)
	}
}

// serveEcho: the echo server, a goroutine per connection, GOMAXPROCS workers; prints its address
// first, then serves until killed.
func serveEcho(workers int) {
	runtime.GOMAXPROCS(workers)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Addr().String())
	for {
		c, err := l.Accept()
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.(*net.TCPConn).SetNoDelay(true)
		go echo(c)
	}
}

// echo copies whatever arrives back until the peer closes or fails.
func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // io.EOF: the peer closed
			return
		}
	}
}
