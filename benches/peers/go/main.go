// The Go peer of fiber's benchmark report (examples/bench_report) and stress demo
// (examples/stress): the same workloads as support/src/workloads, written with goroutines and the
// standard library only.
//
//	go-peer --point SERIES SIZE [--quick] [--reps R] [--workers W] [--ops N] [--sleep-ms MS]
//	go-peer --serve [--workers W]
//
// A point prints one `RESULT key=value ...` line (and any number of `NOTE text` lines) on stdout,
// as the Rust children of bench_report do; a series Go has no equivalent for prints the reason on
// stderr and exits with status 2. `--serve` runs the echo server (a goroutine per connection)
// and prints the address it listens on as its first line.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

const usage = `usage: go-peer --point SERIES SIZE [--quick] [--reps R] [--workers W] [--ops N] [--sleep-ms MS]
       go-peer --serve [--workers W]`

// opts are the command line's flags.
type opts struct {
	series  string
	size    uint64
	quick   bool
	reps    int
	workers int    // 0: the series' own choice
	ops     uint64 // 0: calibrate
	sleepMs int64  // 0: the memory series' own duration
}

func fail(msg string) {
	fmt.Fprintf(os.Stderr, "go-peer: %s\n%s\n", msg, usage)
	os.Exit(2)
}

func main() {
	// Die with the parent (the report's child), as the Rust children do.
	syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	args := os.Args[1:]
	o := opts{}
	serve := false
	num := func(i int) uint64 {
		if i >= len(args) {
			fail(args[i-1] + " takes a value")
		}
		v, err := strconv.ParseUint(args[i], 10, 64)
		if err != nil {
			fail("bad number " + args[i])
		}
		return v
	}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--point":
			if i+2 >= len(args) {
				fail("--point takes SERIES SIZE")
			}
			o.series = args[i+1]
			o.size = num(i + 2)
			i += 2
		case "--serve":
			serve = true
		case "--quick":
			o.quick = true
		case "--reps":
			i++
			o.reps = int(num(i))
		case "--workers":
			i++
			o.workers = int(num(i))
		case "--ops":
			i++
			o.ops = num(i)
		case "--sleep-ms":
			i++
			o.sleepMs = int64(num(i))
		case "-h", "--help":
			fmt.Println(usage)
			return
		default:
			fail("unexpected argument " + args[i])
		}
	}
	if serve {
		serveEcho(orDefault(o.workers, 2))
		return
	}
	if o.series == "" {
		fail("--point or --serve is needed")
	}
	if o.reps == 0 {
		o.reps = 5
		if o.quick {
			o.reps = 2
		}
	}
	run(o)
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// run measures one point and prints it.
func run(o opts) {
	// The report's runtimes have 2 workers unless a series says otherwise.
	runtime.GOMAXPROCS(orDefault(o.workers, 2))
	switch o.series {
	case "spawn":
		n := o.size
		ns := bestNs(o.reps, func() time.Duration { return timed(func() { checkSum(spawnJoin(n), n) }) })
		emit("ns", ns/float64(n))
	case "skynet":
		n := o.size
		ns := bestNs(o.reps, func() time.Duration { return timed(func() { checkSum(skynetTree(n), n) }) })
		emit("ms", ns/1e6)
	case "memory", "sleepers":
		memory(o)
	case "switch":
		// Two goroutines on one P, as the others run on one worker.
		runtime.GOMAXPROCS(orDefault(o.workers, 1))
		emit("ns", perOp(o, switches))
	case "pingpong":
		// SIZE is the worker count here.
		runtime.GOMAXPROCS(orDefault(o.workers, int(o.size)))
		emit("ns", perOp(o, pingPong))
	case "mutex":
		mutexContention(o)
	case "cancel":
		refuse("a goroutine cannot be cancelled from outside (context is cooperative): not measured")
	case "timeout":
		refuse("no Go body for a deadline around a call (context.WithTimeout not measured)")
	default:
		fail("unknown series " + o.series)
	}
}

// refuse is a cell Go cannot run: the reason, on the line the report shows.
func refuse(why string) {
	fmt.Fprintln(os.Stderr, why)
	os.Exit(2)
}

func checkSum(sum, n uint64) {
	if want := n * (n - 1) / 2; sum != want {
		panic(fmt.Sprintf("wrong sum %d, want %d", sum, want))
	}
}

// emit prints the RESULT line: key, value, key, value...
func emit(kvs ...interface{}) {
	line := "RESULT"
	for i := 0; i+1 < len(kvs); i += 2 {
		line += fmt.Sprintf(" %s=%s", kvs[i], strconv.FormatFloat(kvs[i+1].(float64), 'f', -1, 64))
	}
	fmt.Println(line)
}

// note prints a side figure or caveat, shown under the report's table.
func note(format string, args ...interface{}) {
	fmt.Println("NOTE " + fmt.Sprintf(format, args...))
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// bestOf is the shortest of reps runs of f, in ns.
func bestOf(reps int, f func() time.Duration) float64 {
	best := -1.0
	if reps < 1 {
		reps = 1
	}
	for i := 0; i < reps; i++ {
		ns := float64(f().Nanoseconds())
		if best < 0 || ns < best {
			best = ns
		}
	}
	return best
}

// bestNs is one warm-up run, then the best of reps, in ns.
func bestNs(reps int, f func() time.Duration) float64 {
	f()
	return bestOf(reps, f)
}

// perOp calibrates the operations per run to about 200 ms (20 ms quick; this also warms up),
// then returns the best of reps runs in ns per operation; with --ops, runs that many instead.
func perOp(o opts, run func(n uint64) time.Duration) float64 {
	if o.ops > 0 {
		run(o.ops)
		return bestOf(o.reps, func() time.Duration { return run(o.ops) }) / float64(o.ops)
	}
	target := 200 * time.Millisecond
	if o.quick {
		target = 20 * time.Millisecond
	}
	n := uint64(1000)
	for {
		took := run(n)
		if took >= target/2 || n >= 1<<32 {
			break
		}
		secs := took.Seconds()
		if secs < 1e-6 {
			secs = 1e-6
		}
		scale := target.Seconds() / secs
		if scale < 2 {
			scale = 2
		} else if scale > 100 {
			scale = 100
		}
		n = uint64(float64(n) * scale)
	}
	return bestOf(o.reps, func() time.Duration { return run(n) }) / float64(n)
}
