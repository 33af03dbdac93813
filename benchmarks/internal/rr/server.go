// Package rr measures request/response latency the way netperf's UDP_RR and TCP_RR do: one
// byte each way, one transaction at a time. Both ends use blocking system calls on locked OS
// threads rather than Go's netpoller, whose wake-ups would add microseconds of scheduler noise
// to the path being measured, and both can be pinned to one CPU: then a transaction is the
// path's own CPU cost plus two context switches, without the cross-CPU wake-ups (an IPI to an
// idle virtual CPU) that dominate, and blur, latency on a small VM. Sockets are opened inside a
// network namespace and then used from any thread: a socket keeps the namespace it was created
// in.
package rr

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"
)

// poll bounds every blocking call of the server, so Close is noticed within it.
const poll = 100 * time.Millisecond

// Server answers UDP and TCP transactions on the wildcard address. The UDP server replies
// from whatever source the kernel picks, as most servers do: the case policy routing cannot
// fix, since the reply's route lookup has no source to match a rule with.
type Server struct {
	udp, tcp int
	cpu      int
	stop     atomic.Bool
	wg       sync.WaitGroup
}

// Serve starts the servers inside n on port (UDP and TCP alike), their threads pinned to cpu
// unless it is negative.
func Serve(n ns.NetNS, port, cpu int) (s *Server, err error) {
	s = &Server{udp: -1, tcp: -1, cpu: cpu}
	err = n.Do(func(ns.NetNS) error {
		if s.udp, err = socket(unix.SOCK_DGRAM); err != nil {
			return err
		}
		if s.tcp, err = socket(unix.SOCK_STREAM); err != nil {
			return err
		}
		_ = unix.SetsockoptInt(s.tcp, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		for _, fd := range []int{s.udp, s.tcp} {
			if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
				return fmt.Errorf("bind :%d: %w", port, err)
			}
		}
		return unix.Listen(s.tcp, 16)
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.wg.Add(2)
	go s.serveUDP()
	go s.acceptTCP()
	return s, nil
}

func socket(typ int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval(poll.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	pin(s.cpu)
	buf := make([]byte, 2048)
	for !s.stop.Load() {
		n, from, err := unix.Recvfrom(s.udp, buf, 0)
		if err != nil {
			continue // the poll timeout, or EINTR
		}
		_ = unix.Sendto(s.udp, buf[:n], 0, from)
	}
}

// acceptTCP serves each connection on its own pinned thread until the connection goes quiet
// for a poll: then it hands it to a goroutine of its own and accepts again. A connection per
// transaction (TCP_CRR) is thus answered without a thread started for it, whose cost would
// swamp the path's, while a client that vanishes does not block the next one.
func (s *Server) acceptTCP() {
	defer s.wg.Done()
	pin(s.cpu)
	buf := make([]byte, 2048)
	for !s.stop.Load() {
		fd, _, err := unix.Accept4(s.tcp, unix.SOCK_CLOEXEC)
		if err != nil {
			continue
		}
		prepare(fd)
		if serveConn(fd, buf) {
			unix.Close(fd)
			continue
		}
		s.wg.Add(1)
		go s.serveTCP(fd)
	}
}

// prepare sets an accepted connection up for one-byte transactions and the server's poll.
func prepare(fd int) {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	tv := unix.NsecToTimeval(poll.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
}

// serveConn echoes on fd until the peer closes (true) or a poll passes without a request
// (false).
func serveConn(fd int, buf []byte) (closed bool) {
	for {
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue // a signal to the thread, not the poll's end
		}
		if errors.Is(err, unix.EAGAIN) {
			return false
		}
		if err != nil || n == 0 {
			return true
		}
		if _, err := unix.Write(fd, buf[:n]); err != nil {
			return true
		}
	}
}

func (s *Server) serveTCP(fd int) {
	defer s.wg.Done()
	defer unix.Close(fd)
	pin(s.cpu)
	buf := make([]byte, 2048)
	for !s.stop.Load() {
		if serveConn(fd, buf) {
			return
		}
	}
}

// pin locks the goroutine to its thread and, for cpu >= 0, the thread to cpu. The goroutine
// must end locked: the runtime then discards the thread instead of reusing one whose affinity
// was changed.
func pin(cpu int) {
	runtime.LockOSThread()
	if cpu < 0 {
		return
	}
	var set unix.CPUSet
	set.Set(cpu)
	_ = unix.SchedSetaffinity(0, &set) // best effort: unpinned is still a measurement
}

// Close stops the servers and waits for them.
func (s *Server) Close() {
	s.stop.Store(true)
	s.wg.Wait()
	for _, fd := range []int{s.udp, s.tcp} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}
