package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/metrics"
)

// syncBuffer is a log sink the server's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testServer is a real Server (informer cache over a fake dynamic client, no pods) serving
// on socket.
type testServer struct {
	socket  string
	log     *syncBuffer
	metrics *metrics.Registry
}

// startServer runs Serve on socket until the test ends.
func startServer(t *testing.T, socket string, opts ...func(*Server)) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		k8s.PodResource: "PodList",
		k8s.NADResource: "NetworkAttachmentDefinitionList",
	})
	c, err := NewCache(ctx, dyn, "node-a", 30*time.Second)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ts := &testServer{socket: socket, log: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.metrics = metrics.New(bpffs.Layout{Root: t.TempDir()}, log)
	srv := NewServer(c, 2, ts.metrics, log)
	for _, o := range opts {
		o(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, socket) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if t.Failed() {
			t.Logf("steerd log:\n%s", ts.log)
		}
	})
	// Ready once the socket has its final mode and answers.
	for deadline := time.Now().Add(10 * time.Second); ; {
		fi, err := os.Stat(socket)
		if err == nil && fi.Mode().Perm() == 0o600 {
			if c, err := net.Dial("unix", socket); err == nil {
				c.Close()
				return ts
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Serve returned early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("steerd socket %s not ready", socket)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// post sends a raw JSON request line to the server as a root client and returns the CNI
// response.
func (ts *testServer) post(t *testing.T, body string) api.Response {
	t.Helper()
	c, err := net.Dial("unix", ts.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(body + "\n")); err != nil {
		t.Fatalf("send %s: %v", body, err)
	}
	raw, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("answer to %s: %v", body, err)
	}
	var out api.Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %q: %v", raw, err)
	}
	return out
}

// thickConf is a plugin config as the plugin forwards it to steerd.
const thickConf = `{"cniVersion":"1.1.0","name":"steer-net","type":"steer","socketPath":"/run/steer/steerd.sock","steering":false}`

// request is the JSON body of a CNI request to steerd.
func request(command, containerID, ifName, cniArgs, conf string) string {
	b, err := json.Marshal(api.Request{Command: command, ContainerID: containerID, Netns: "/proc/self/ns/net",
		IfName: ifName, Args: cniArgs, StdinData: []byte(conf)})
	if err != nil {
		panic(err)
	}
	return string(b)
}

// probeRequest is one steerd answers without touching the cluster: the container ID is refused.
var probeRequest = request("ADD", "../probe", "eth0", "", thickConf)

// helperEnv names the socket the helper process dials; set only in the helper.
const helperEnv = "STEER_PEERCRED_HELPER_SOCKET"

// TestHelperProcess is not a test: run as another user by TestPeerCred, it dials the socket
// and posts probeRequest, and prints one line saying how far it got.
func TestHelperProcess(t *testing.T) {
	socket := os.Getenv(helperEnv)
	if socket == "" {
		return
	}
	fmt.Println(dialAndPost(socket))
	os.Exit(0)
}

func dialAndPost(socket string) string {
	c, err := net.Dial("unix", socket)
	if errors.Is(err, syscall.EACCES) {
		return "dial: EACCES"
	}
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(probeRequest + "\n")); err != nil {
		return "closed: " + err.Error()
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return "closed: " + err.Error()
	}
	return fmt.Sprintf("answered: %s", bytes.TrimSpace(line))
}

// nobody is the uid and gid the helper runs as.
const nobody = 65534

// asNobody runs TestHelperProcess as uid/gid 65534 against socket and returns its line and
// pid. The
// test binary is linked (or copied) into dir: go test builds it in a 0700 directory that
// nobody cannot reach.
func asNobody(t *testing.T, dir, socket string) (string, int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper.test")
	if _, err := os.Stat(bin); err != nil {
		if err := os.Link(self, bin); err != nil {
			copyFile(t, self, bin)
		}
		if err := os.Chmod(bin, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$")
	cmd.Env = []string{helperEnv + "=" + socket, "PATH=/usr/bin:/bin"}
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid %d: %v\n%s", nobody, err, out)
	}
	line := strings.TrimSpace(string(out))
	t.Logf("uid %d (pid %d): %s", nobody, cmd.Process.Pid, line)
	return line, cmd.Process.Pid
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// Only root may use steerd's socket. The file modes keep others out; when they are loosened
// (on purpose here), the SO_PEERCRED check still does: the connection is closed unanswered.
func TestPeerCred(t *testing.T) {
	nstest.RequireRoot(t)
	dir := t.TempDir()
	// t.TempDir makes 0700 directories: let nobody reach dir (and the helper binary in it),
	// but not the socket's own directory, which Serve makes 0700.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runDir := filepath.Join(dir, "run")
	socket := filepath.Join(runDir, "steerd.sock")
	ts := startServer(t, socket)

	rootAnswers := func(when string) {
		t.Helper()
		res := ts.post(t, probeRequest)
		if res.Error == nil || res.Error.Code != types.ErrInvalidEnvironmentVariables || !strings.Contains(res.Error.Msg, "CNI_CONTAINERID") {
			t.Errorf("%s: root client got %+v, want the CNI_CONTAINERID error", when, res)
		}
	}
	rootAnswers("before")

	// As Serve made them: a 0700 directory, a 0600 socket.
	if got, _ := asNobody(t, dir, socket); got != "dial: EACCES" {
		t.Errorf("uid %d with the socket dir 0700: %q, want EACCES", nobody, got)
	}
	// The socket's mode alone keeps nobody out.
	if err := os.Chmod(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, _ := asNobody(t, dir, socket); got != "dial: EACCES" {
		t.Errorf("uid %d with the socket 0600: %q, want EACCES", nobody, got)
	}
	// World-writable: connect(2) succeeds, and SO_PEERCRED refuses the peer.
	if err := os.Chmod(socket, 0o666); err != nil {
		t.Fatal(err)
	}
	got, pid := asNobody(t, dir, socket)
	if !strings.HasPrefix(got, "closed: ") {
		t.Errorf("uid %d with the socket 0666: %q, want the connection closed without an answer", nobody, got)
	}
	logged := ts.log.String()
	want := fmt.Sprintf("refused a connection from a non-root peer\" pid=%d uid=%d", pid, nobody)
	if !strings.Contains(logged, want) {
		t.Errorf("refusal not logged as %q:\n%s", want, logged)
	}
	rootAnswers("after")
}
