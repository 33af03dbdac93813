package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// serveLines runs Serve with handle on a socket in a temporary directory; stop ends it and
// returns how long Serve took to return.
func serveLines(t *testing.T, idle time.Duration, handle func(context.Context, []byte) any) (socket string, stop func() time.Duration) {
	t.Helper()
	socket = filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, idle, 64, handle) }()
	stopped := false
	stop = func() time.Duration {
		if stopped {
			return 0
		}
		stopped = true
		start := time.Now()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		return time.Since(start)
	}
	t.Cleanup(func() { stop() })
	return socket, stop
}

func echo(_ context.Context, line []byte) any { return json.RawMessage(line) }

// Calls on one connection, one after the other, each answered by its line.
func TestLinesCall(t *testing.T) {
	socket, _ := serveLines(t, time.Second, echo)
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, msg := range []string{"a", "b"} {
		got, err := Call(context.Background(), c, r, msg, 64)
		if err != nil || string(got) != `"`+msg+`"`+"\n" {
			t.Fatalf("Call(%q) = %q, %v", msg, got, err)
		}
	}
	// A line longer than the server takes closes the connection.
	if _, err := Call(context.Background(), c, r, strings.Repeat("x", 100), 64); err == nil {
		t.Error("a line over the limit was answered")
	}
}

// The handler's context ends when the peer hangs up, not before; a call past its deadline or
// canceled returns at once.
func TestLinesPeerHangsUp(t *testing.T) {
	ended := make(chan struct{})
	socket, _ := serveLines(t, 10*time.Second, func(ctx context.Context, line []byte) any {
		if string(line) == "\"wait\"\n" {
			<-ctx.Done()
			close(ended)
		}
		return "done"
	})
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Call(ctx, c, bufio.NewReader(c), "wait", 64); err == nil {
		t.Fatal("a call past its deadline returned an answer")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the call returned %v after its deadline", d)
	}
	select {
	case <-ended:
		t.Fatal("the handler's context ended while the peer was still connected")
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context did not end when the peer hung up")
	}
}

// Stopping the server lets a running call finish and answer, and closes idle connections.
func TestLinesShutdown(t *testing.T) {
	running := make(chan struct{})
	socket, stop := serveLines(t, time.Minute, func(ctx context.Context, line []byte) any {
		if string(line) == "\"slow\"\n" {
			close(running)
			time.Sleep(300 * time.Millisecond)
		}
		return "finished"
	})
	idle, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	answer := make(chan string, 1)
	go func() {
		line, err := Call(context.Background(), busy, bufio.NewReader(busy), "slow", 64)
		answer <- string(line) + errString(err)
	}()
	<-running
	if d := stop(); d > 5*time.Second {
		t.Errorf("Serve took %v to stop", d)
	}
	if got := <-answer; got != "\"finished\"\n" {
		t.Errorf("the call running at shutdown got %q", got)
	}
	_ = idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("an idle connection stayed open after shutdown: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " " + err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Do carries a CNI error back as such, and anything that is not steerd as ErrUnavailable.
func TestDo(t *testing.T) {
	socket, _ := serveLines(t, time.Second, func(_ context.Context, line []byte) any {
		var req Request
		if err := json.Unmarshal(line, &req); err != nil || req.Command != "ADD" {
			return Response{Error: types.NewError(types.ErrInvalidEnvironmentVariables, "bad", "")}
		}
		return Response{Result: json.RawMessage(`{"cniVersion":"1.1.0"}`)}
	})
	ctx := context.Background()
	if res, err := Do(ctx, socket, Request{Command: "ADD"}); err != nil || string(res) != `{"cniVersion":"1.1.0"}` {
		t.Errorf("ADD: %s, %v", res, err)
	}
	var te *types.Error
	if _, err := Do(ctx, socket, Request{Command: "DEL"}); !errors.As(err, &te) || te.Code != types.ErrInvalidEnvironmentVariables {
		t.Errorf("DEL: %v, want the CNI error", err)
	}
	if _, err := Do(ctx, filepath.Join(t.TempDir(), "none.sock"), Request{Command: "ADD"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no socket: %v", err)
	}
	garbage, _ := serveLines(t, time.Second, func(context.Context, []byte) any { return []int{1} })
	if _, err := Do(ctx, garbage, Request{Command: "ADD"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("not an answer: %v", err)
	}
}
