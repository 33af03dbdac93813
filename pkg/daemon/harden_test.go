package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/api"
)

// Clients that send half a request (or nothing) lose their connection after the read timeout,
// and only so many are held at once; they used to be kept for ever (300 held, 300 fds and
// goroutines).
func TestServeSlowClients(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "steerd.sock")
	ts := startServer(t, socket, func(s *Server) { s.readTimeout, s.maxConns = 300*time.Millisecond, 4 })
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 12 {
		c, err := net.Dial("unix", socket)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if i%2 == 0 {
			_, _ = fmt.Fprint(c, `{"command":"ADD","containerID":"c1"`) // and never the end of the line
		}
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		for {
			_, err := c.Read(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("connection %d still open after 10s", i)
			}
			if err != nil {
				break // closed by the server
			}
		}
	}
	// Still serving.
	if res := ts.post(t, request("ADD", "../probe", "eth0", "", thickConf)); res.Error == nil || res.Error.Code != types.ErrInvalidEnvironmentVariables {
		t.Errorf("request after the slow clients: %+v", res)
	}
}

// One hung ADD and its retries (clients giving up) must not hold up other containers' DEL
// and STATUS: retries wait for the container's lock without a worker slot and leave when
// their client does. They used to take every slot and wait for the hung ADD.
func TestServeHungAddDoesNotStarve(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ncat >/dev/null\nif [ \"$CNI_COMMAND\" = ADD ]; then sleep 30; fi\n"
	if err := os.WriteFile(filepath.Join(bin, "hang"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"steer-net","type":"steer","socketPath":"/run/steer/steerd.sock",`+
		`"steering":false,"cniDir":%q,"binDir":%q,"delegates":[{"cniVersion":"1.0.0","name":"hang","type":"hang"}]}`,
		filepath.Join(dir, "cni"), bin)
	socket := filepath.Join(dir, "steerd.sock")
	ts := startServer(t, socket) // 2 workers
	netns := nstest.NewNS(t).Path()
	call := func(timeout time.Duration, verb, id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := api.Do(ctx, socket, api.Request{Command: verb, ContainerID: id, Netns: netns, IfName: "eth0", Path: bin, StdinData: []byte(conf)})
		return err
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = call(4*time.Second, "ADD", "hung") // gives up, which kills the delegate
	}()
	time.Sleep(300 * time.Millisecond)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = call(300*time.Millisecond, "ADD", "hung")
		}()
	}
	time.Sleep(500 * time.Millisecond)
	for _, verb := range []string{"STATUS", "DEL"} {
		start := time.Now()
		if err := call(2*time.Second, verb, "other"); err != nil {
			t.Errorf("%s of another container while an ADD hangs: %v after %s", verb, err, time.Since(start))
		}
	}
	wg.Wait()
	// The hung ADD rolled back when its client left; its container can be deleted.
	if err := call(10*time.Second, "DEL", "hung"); err != nil {
		t.Errorf("DEL hung: %v", err)
	}
	// The engine names the container; steerd's logger must not name it again.
	for _, line := range strings.Split(ts.log.String(), "\n") {
		if strings.Count(line, " container=") > 1 {
			t.Errorf("log line names the container twice: %s", line)
			break
		}
	}
}
