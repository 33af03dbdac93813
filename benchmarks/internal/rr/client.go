package rr

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// Options bound one run of transactions.
type Options struct {
	Duration time.Duration // measured time, after Warmup
	Warmup   time.Duration // transactions not recorded: neighbour resolution, flow learning
	Timeout  time.Duration // per transaction; also the TCP connect timeout
	CPU      int           // the client's CPU (the server's is given to Serve); -1: any
}

// Result is one run: latencies in microseconds.
type Result struct {
	P50, P99     float64
	Transactions int
	Timeouts     int
	PerSecond    float64
}

// maxTimeouts ends a run that gets no answers: a broken path would otherwise take the whole
// duration in timeouts.
const maxTimeouts = 3

// ErrNoAnswer is a run in which the server never answered (or too rarely to measure).
var ErrNoAnswer = errors.New("no answer")

// UDP runs transactions from inside n to dst on a connected socket: a reply from another
// source address (eth0's) is not delivered to it, as with any client that checks who answers.
func UDP(n ns.NetNS, dst netip.AddrPort, o Options) (Result, error) {
	fd, err := dial(n, unix.SOCK_DGRAM, dst, o.Timeout)
	if err != nil {
		return Result{}, err
	}
	defer unix.Close(fd)
	return run(fd, o)
}

// TCP connects from inside n to dst and runs transactions on the connection.
func TCP(n ns.NetNS, dst netip.AddrPort, o Options) (Result, error) {
	fd, err := dial(n, unix.SOCK_STREAM, dst, o.Timeout)
	if err != nil {
		return Result{}, err
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	return run(fd, o)
}

// TCPConnect runs transactions from inside n to dst the way netperf's TCP_CRR does: each one
// connects, sends the request, reads the response and closes, so its latency includes the
// handshake and the first packets of a flow (a Service proxy's backend choice and its new
// connection state). The client closes with a reset, so neither end keeps a TIME_WAIT: with an
// orderly close, each transaction would leave one on the closing side, and once they fill much of
// the ephemeral range toward one destination the kernel's search for a free port in connect()
// (or the other end's TIME_WAIT meeting a new SYN) would make the latency, not the path.
func TCPConnect(n ns.NetNS, dst netip.AddrPort, o Options) (Result, error) {
	type result struct {
		res Result
		err error
	}
	done := make(chan result)
	go func() {
		pin(o.CPU) // the thread stays locked and is discarded, so it may stay in n
		if err := n.Set(); err != nil {
			done <- result{err: fmt.Errorf("enter %s: %w", n.Path(), err)}
			return
		}
		res, err := measure(o, func() error { return connectOnce(dst, o.Timeout) })
		done <- result{res, err}
	}()
	r := <-done
	return r.res, r.err
}

// connectOnce is one TCP_CRR transaction from the calling thread's namespace.
func connectOnce(dst netip.AddrPort, timeout time.Duration) error {
	fd, err := socket4(unix.SOCK_STREAM, timeout)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := connect(fd, dst); err != nil {
		return err
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	// An abortive close (a reset): see TCPConnect.
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	return once(fd, []byte{'r'}, make([]byte, 64))
}

// dial opens a socket in n and connects it; SO_SNDTIMEO bounds a blocking TCP connect.
func dial(n ns.NetNS, typ int, dst netip.AddrPort, timeout time.Duration) (fd int, err error) {
	err = n.Do(func(ns.NetNS) error {
		fd, err = socket4(typ, timeout)
		return err
	})
	if err != nil {
		return -1, err
	}
	if err := connect(fd, dst); err != nil {
		unix.Close(fd)
		if errors.Is(err, errTimeout) {
			return -1, fmt.Errorf("%w: %w", ErrNoAnswer, err)
		}
		return -1, err
	}
	return fd, nil
}

// socket4 opens an IPv4 socket in the calling thread's namespace, its blocking calls bounded
// by timeout.
func socket4(typ int, timeout time.Duration) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd, nil
}

// restarted calls f again while a signal interrupts it: Go's runtime signals its threads, and
// a socket call with a timeout set is not restarted by the kernel (signal(7)).
func restarted(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// connect connects fd to dst; a blocking TCP connect that times out is a missing answer. A
// connect interrupted by a signal goes on in the kernel: called again, it waits for the same
// handshake, and finds the socket connected if it completed meanwhile.
func connect(fd int, dst netip.AddrPort) error {
	sa := &unix.SockaddrInet4{Port: int(dst.Port()), Addr: dst.Addr().As4()}
	err := restarted(func() error { return unix.Connect(fd, sa) })
	if errors.Is(err, unix.EISCONN) {
		err = nil
	}
	if err != nil {
		if errors.Is(err, unix.EINPROGRESS) || errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("connect %s: %w", dst, errTimeout)
		}
		return fmt.Errorf("connect %s: %w", dst, err)
	}
	return nil
}

// run runs the transactions on a thread of their own (see pin).
func run(fd int, o Options) (Result, error) {
	type result struct {
		res Result
		err error
	}
	done := make(chan result)
	go func() {
		pin(o.CPU)
		res, err := transact(fd, o)
		done <- result{res, err}
	}()
	r := <-done
	return r.res, r.err
}

func transact(fd int, o Options) (Result, error) {
	req, buf := []byte{'r'}, make([]byte, 64)
	return measure(o, func() error { return once(fd, req, buf) })
}

// errTimeout is one transaction left unanswered within the timeout.
var errTimeout = errors.New("timeout")

// once sends one request on fd and reads its response.
func once(fd int, req, buf []byte) error {
	if err := restarted(func() error { _, err := unix.Write(fd, req); return err }); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	err := restarted(func() error { _, err := unix.Read(fd, buf); return err })
	switch {
	case errors.Is(err, unix.EAGAIN):
		return errTimeout
	case err != nil:
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// measure times transaction back to back for o's warm-up and duration.
func measure(o Options, transaction func() error) (Result, error) {
	var (
		res  Result
		lat  = make([]float64, 0, 1<<16)
		t0   = time.Now()
		end  = t0.Add(o.Warmup + o.Duration)
		meas = t0.Add(o.Warmup)
	)
	for now := t0; now.Before(end); {
		err := transaction()
		done := time.Now()
		switch {
		case errors.Is(err, errTimeout):
			res.Timeouts++
			if res.Timeouts >= maxTimeouts && len(lat) < maxTimeouts*10 {
				return res, fmt.Errorf("%w: %d timeouts", ErrNoAnswer, res.Timeouts)
			}
		case err != nil:
			return res, err
		case !now.Before(meas):
			lat = append(lat, float64(done.Sub(now).Nanoseconds())/1e3)
		}
		now = done
	}
	if len(lat) == 0 {
		return res, fmt.Errorf("%w: no transaction completed", ErrNoAnswer)
	}
	slices.Sort(lat)
	res.Transactions = len(lat)
	res.P50 = quantile(lat, 0.50)
	res.P99 = quantile(lat, 0.99)
	res.PerSecond = float64(len(lat)) / o.Duration.Seconds()
	return res, nil
}

func quantile(sorted []float64, q float64) float64 {
	return sorted[int(q*float64(len(sorted)-1)+0.5)]
}
