package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"time"
)

// Steer's binaries and steerd talk in JSON lines over unix sockets: one line per request, one
// per answer. A CNI binary is a fresh process per call, and pays for every page of code it
// runs: an HTTP client costs it more than the call itself, and links TLS and x509 along.

// ReadLine reads one line of at most max bytes, its newline included.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		part, err := r.ReadSlice('\n')
		line = append(line, part...)
		switch {
		case len(line) > max:
			return nil, errors.New("line too long")
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil:
			return nil, err
		}
		return line, nil
	}
}

// Call writes msg as one line on c and reads the answer's line from r (c's reader), at most
// max bytes, within ctx: its deadline is the connection's, and its end interrupts the call.
func Call(ctx context.Context, c net.Conn, r *bufio.Reader, msg any, max int) ([]byte, error) {
	line, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline() // the zero time, no deadline, when there is none
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(append(line, '\n')); err != nil {
		return nil, err
	}
	return ReadLine(r, max)
}

// Serve answers the lines of the connections ln accepts, one call after the other on each,
// until ctx ends; then it stops accepting, lets the calls running finish (waiting at most
// shutdownWait), and returns. handle gets a call's line and a context that ends when the peer
// hangs up (a CNI binary killed by its runtime); what it returns is written back as a line. A
// connection idle for idle, or sending a line longer than max, is closed.
func Serve(ctx context.Context, ln net.Listener, idle time.Duration, max int, handle func(ctx context.Context, line []byte) any) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var conns sync.WaitGroup
	defer func() {
		done := make(chan struct{})
		go func() { conns.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(shutdownWait):
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		conns.Go(func() { serveConn(ctx, c, idle, max, handle) })
	}
}

// shutdownWait bounds how long Serve waits for running calls once its context ends.
const shutdownWait = 30 * time.Second

func serveConn(ctx context.Context, c net.Conn, idle time.Duration, max int, handle func(context.Context, []byte) any) {
	defer c.Close()
	// An idle connection is closed when ctx ends; a call running is left to finish.
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	r := bufio.NewReader(c)
	for ctx.Err() == nil {
		_ = c.SetReadDeadline(time.Now().Add(idle))
		line, err := ReadLine(r, max)
		if err != nil || ctx.Err() != nil {
			return
		}
		answer := callWhilePeerWaits(ctx, c, r, line, handle)
		out, err := json.Marshal(answer)
		if err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(idle))
		if _, err := c.Write(append(out, '\n')); err != nil {
			return
		}
	}
}

// callWhilePeerWaits runs handle with a context that ends when the peer hangs up: a read from
// the connection returns then (a peer that sends its next line early does not end it).
func callWhilePeerWaits(ctx context.Context, c net.Conn, r *bufio.Reader, line []byte, handle func(context.Context, []byte) any) any {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	_ = c.SetReadDeadline(time.Time{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		var ne net.Error
		if _, err := r.Peek(1); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			cancel()
		}
	}()
	answer := handle(cctx, line)
	_ = c.SetReadDeadline(time.Unix(1, 0)) // ends the watch
	<-watched
	return answer
}
