// Package rrtraffic is steady request/response traffic for tests that must lose nothing while
// the dataplane changes under it: UDP requests each waiting for its answer, and requests on one
// TCP connection, against echo servers.
package rrtraffic

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Options say where the traffic goes and how patient it is.
type Options struct {
	UDP, TCP netip.AddrPort // echo servers
	// Timeout is how long a UDP request waits for its answer before it counts as lost: far above
	// the path's round trip, far below a retry a real client would make.
	Timeout time.Duration
	Pause   time.Duration // between two requests of one kind
	Warmup  int64         // answers of each kind Start waits for
}

// Traffic runs until Finish.
type Traffic struct {
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	udpOK   atomic.Int64
	udpLost atomic.Int64
	tcpOK   atomic.Int64
	tcpErr  atomic.Value // error
}

// Start dials both servers from client's namespace and returns once Warmup requests of each
// kind were answered (the flows exist before the test goes on).
func Start(t testing.TB, client ns.NetNS, o Options) *Traffic {
	t.Helper()
	tr := &Traffic{stop: make(chan struct{})}
	var u, c net.Conn
	err := client.Do(func(ns.NetNS) (err error) {
		if u, err = net.Dial("udp", o.UDP.String()); err != nil {
			return err
		}
		c, err = net.DialTimeout("tcp", o.TCP.String(), 5*time.Second)
		return err
	})
	if err != nil {
		if u != nil {
			u.Close()
		}
		t.Fatal(err)
	}
	tr.wg.Add(2)
	go tr.udp(u, o)
	go tr.tcp(c, o)
	deadline := time.Now().Add(10 * time.Second)
	for tr.udpOK.Load() < o.Warmup || tr.tcpOK.Load() < o.Warmup {
		if time.Now().After(deadline) {
			t.Fatalf("no steady traffic to %s / %s: %v", o.UDP, o.TCP, tr.Finish())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return tr
}

func (tr *Traffic) stopped() bool {
	select {
	case <-tr.stop:
		return true
	default:
		return false
	}
}

func (tr *Traffic) udp(u net.Conn, o Options) {
	defer tr.wg.Done()
	defer u.Close()
	buf := make([]byte, 64)
	for i := 0; !tr.stopped(); i++ {
		req := fmt.Sprintf("u%08d", i)
		if _, err := u.Write([]byte(req)); err != nil {
			tr.udpLost.Add(1)
			continue
		}
		_ = u.SetReadDeadline(time.Now().Add(o.Timeout))
		for {
			n, err := u.Read(buf)
			if err != nil {
				tr.udpLost.Add(1)
				break
			}
			if string(buf[:n]) == req {
				tr.udpOK.Add(1)
				break
			} // a late answer to an earlier request: read on
		}
		time.Sleep(o.Pause)
	}
}

func (tr *Traffic) tcp(c net.Conn, o Options) {
	defer tr.wg.Done()
	defer c.Close()
	buf := make([]byte, 64)
	for i := 0; !tr.stopped(); i++ {
		req := fmt.Sprintf("t%08d", i)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			tr.tcpErr.Store(err)
			return
		}
		if _, err := io.ReadFull(c, buf[:len(req)]); err != nil {
			tr.tcpErr.Store(err)
			return
		}
		if string(buf[:len(req)]) != req {
			tr.tcpErr.Store(fmt.Errorf("TCP answer %q to %q", buf[:len(req)], req))
			return
		}
		tr.tcpOK.Add(1)
		time.Sleep(o.Pause)
	}
}

// Counts are the requests answered and lost so far.
func (tr *Traffic) Counts() (udpOK, udpLost, tcpOK int64) {
	return tr.udpOK.Load(), tr.udpLost.Load(), tr.tcpOK.Load()
}

// Finish stops the traffic and says what went wrong; it may be called more than once.
func (tr *Traffic) Finish() error {
	tr.once.Do(func() { close(tr.stop) })
	tr.wg.Wait()
	var errs []error
	if n := tr.udpLost.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("%d of %d UDP requests got no answer", n, n+tr.udpOK.Load()))
	}
	if err, _ := tr.tcpErr.Load().(error); err != nil {
		errs = append(errs, fmt.Errorf("TCP after %d answers: %w", tr.tcpOK.Load(), err))
	}
	return errors.Join(errs...)
}
