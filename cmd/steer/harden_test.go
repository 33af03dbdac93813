package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/internal/testutil/nstest"
)

// Tests of input refused before any delegate runs, and of misbehaving delegates, with the
// real binary but without the node harness or an apiserver.

var (
	standaloneOnce sync.Once
	standaloneDir  string
	standaloneErr  error
)

// removeStandalone is passed to kubetest.Main: the build outlives single tests.
func removeStandalone() {
	if standaloneDir != "" {
		_ = os.RemoveAll(standaloneDir)
	}
}

// steerBinary builds the plugin once per test binary.
func steerBinary(t *testing.T) string {
	t.Helper()
	standaloneOnce.Do(func() {
		if standaloneDir, standaloneErr = os.MkdirTemp("", "steer-harden-"); standaloneErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(standaloneDir, "steer"), "github.com/steernet/steer/cmd/steer")
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			standaloneErr = fmt.Errorf("build steer: %v\n%s", err, out)
		}
	})
	if standaloneErr != nil {
		t.Fatal(standaloneErr)
	}
	return filepath.Join(standaloneDir, "steer")
}

// scriptEnv is a directory with the plugin's bin, cni and marker paths.
type scriptEnv struct {
	dir, bin, cniDir string
}

func newScriptEnv(t *testing.T) *scriptEnv {
	t.Helper()
	dir := t.TempDir()
	e := &scriptEnv{dir: dir, bin: filepath.Join(dir, "bin"), cniDir: filepath.Join(dir, "cni")}
	if err := os.Mkdir(e.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// script installs a delegate plugin written in sh.
func (e *scriptEnv) script(t *testing.T, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(e.bin, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

// conf is a thin-mode steer config delegating to the given plugin types, with extra keys.
func (e *scriptEnv) conf(extra string, delegates ...string) []byte {
	var ds []string
	for _, d := range delegates {
		ds = append(ds, fmt.Sprintf(`{"cniVersion":"1.0.0","name":"%s-net","type":%q}`, d, d))
	}
	list := "[" + joinComma(ds) + "]"
	return fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":"steer","type":"steer","binDir":%q,"cniDir":%q,`+
		`"bpffsRoot":"/sys/fs/bpf/steer-harden-unused","steering":false,"delegateTimeout":"2s","delegates":%s%s}`,
		e.bin, e.cniDir, list, extra)
}

func joinComma(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x)
	}
	return b.String()
}

// run execs the plugin with the CNI variables in env (CNI_PATH defaults to the bin dir).
func (e *scriptEnv) run(t *testing.T, env map[string]string, stdin []byte) pluginRun {
	t.Helper()
	cmd := exec.Command(steerBinary(t))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH=" + e.bin}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := pluginRun{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.exit = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("exec steer: %v", err)
	}
	return r
}

func verbEnv(verb, id, netns, ifName string) map[string]string {
	return map[string]string{"CNI_COMMAND": verb, "CNI_CONTAINERID": id, "CNI_NETNS": netns, "CNI_IFNAME": ifName}
}

// markerScript is a delegate that records that it ran and returns an empty result.
func markerScript(marker string) string {
	return fmt.Sprintf("cat >/dev/null\ntouch %q\necho '{\"cniVersion\":\"1.0.0\"}'\n", marker)
}

// The host's own network namespace as CNI_NETNS (a symlink to it, as a confused or hostile
// runtime would pass): ADD is refused before any delegate runs, and DEL succeeds (it used to
// fail with code 8 for ever, leaving the pod Terminating).
func TestHostNetnsRefused(t *testing.T) {
	e := newScriptEnv(t)
	marker := filepath.Join(e.dir, "ran")
	e.script(t, "fake", markerScript(marker))
	conf := e.conf("", "fake")
	hostNS := filepath.Join(e.dir, "hostns")
	if err := os.Symlink("/proc/self/ns/net", hostNS); err != nil {
		t.Fatal(err)
	}
	regular := filepath.Join(e.dir, "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		netns string
		code  uint
	}{{hostNS, types.ErrInvalidNetNS}, {"/proc/self/ns/net", types.ErrInvalidNetNS}, {regular, types.ErrInvalidEnvironmentVariables}} {
		for _, verb := range []string{"ADD", "CHECK"} {
			r := e.run(t, verbEnv(verb, "hostns-test", tc.netns, "steerhn0"), conf)
			if te := r.cniError(t, verb); te == nil || te.Code != tc.code || !bytes.Contains(r.stdout, []byte("CNI_NETNS")) {
				t.Errorf("%s with CNI_NETNS %s: exit %d %s, want code %d naming CNI_NETNS", verb, tc.netns, r.exit, r.stdout, tc.code)
			}
			if bytes.Count(r.stdout, []byte("{")) > 1 {
				t.Errorf("%s printed more than the error: %s", verb, r.stdout)
			}
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("a delegate ran with CNI_NETNS %s", tc.netns)
		}
		if names, _ := filepath.Glob(filepath.Join(e.cniDir, "*.json")); len(names) > 0 {
			t.Errorf("cache written: %v", names)
		}
		for range 2 {
			if r := e.run(t, verbEnv("DEL", "hostns-test", tc.netns, "steerhn0"), conf); r.exit != 0 {
				t.Errorf("DEL with CNI_NETNS %s: exit %d %s", tc.netns, r.exit, r.stdout)
			}
		}
	}
}

// newPodNS makes a network namespace for a plugin run, removed when the test ends.
func newPodNS(t *testing.T) string {
	t.Helper()
	n := nstest.NewNS(t)
	return n.Path()
}

// Misbehaving delegates: whatever they print, ADD fails with a non-zero CNI code (0 is
// success to a runtime) and an error and stderr of bounded size; a configuration over 1 MiB is
// refused before it is decoded, and DEL with it succeeds.
func TestMisbehavingDelegatesAndHugeInput(t *testing.T) {
	nstest.RequireRoot(t)
	e := newScriptEnv(t)
	huge := "head -c 20000000 /dev/zero | tr '\\0' x"
	e.script(t, "garbage", "cat >/dev/null\necho 'garbage, not JSON'\nexit 1\n")
	e.script(t, "killed", "cat >/dev/null\nkill -9 $$\n")
	e.script(t, "noisy", "cat >/dev/null\n"+huge+" >&2\nexit 1\n")
	e.script(t, "codezero", "cat >/dev/null\necho '{\"code\":0,\"msg\":\"broke\"}'\nexit 1\n")
	netns := newPodNS(t)
	for _, typ := range []string{"garbage", "killed", "noisy", "codezero"} {
		conf := e.conf(`,"logToStderr":true`, typ)
		r := e.run(t, verbEnv("ADD", "misbehave-"+typ, netns, "eth0"), conf)
		if te := r.cniError(t, "ADD "+typ); te == nil || te.Code == 0 {
			t.Errorf("ADD %s: exit %d, %.300s", typ, r.exit, r.stdout)
		}
		if len(r.stdout) > 64<<10 || len(r.stderr) > 256<<10 {
			t.Errorf("ADD %s: %d bytes on stdout, %d on stderr", typ, len(r.stdout), len(r.stderr))
		}
		if r := e.run(t, verbEnv("DEL", "misbehave-"+typ, netns, "eth0"), conf); r.exit != 0 {
			t.Logf("DEL %s: exit %d %.300s", typ, r.exit, r.stdout) // the delegate fails DEL too
		}
	}

	big := e.conf(`,"padding":"`+string(bytes.Repeat([]byte("x"), 2<<20))+`"`, "garbage")
	r := e.run(t, verbEnv("ADD", "huge-conf", netns, "eth0"), big)
	if te := r.cniError(t, "ADD"); te == nil || te.Code != types.ErrDecodingFailure {
		t.Errorf("ADD with a 2 MiB config: exit %d %.300s, want code 6", r.exit, r.stdout)
	}
	if r := e.run(t, verbEnv("DEL", "huge-conf", netns, "eth0"), big); r.exit != 0 {
		t.Errorf("DEL with a 2 MiB config: exit %d %.300s", r.exit, r.stdout)
	}
}

// Verbs of one container run one at a time in thin mode too: two ADDs of the same container
// ran their delegates at once (runtimes retry, outside the CNI contract). The lock is a file
// in cniDir, removed by DEL.
func TestThinModeContainerLock(t *testing.T) {
	nstest.RequireRoot(t)
	e := newScriptEnv(t)
	state := filepath.Join(e.dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	running, overlap := filepath.Join(state, "running"), filepath.Join(state, "overlap")
	e.script(t, "slow", fmt.Sprintf("cat >/dev/null\nmkdir %q 2>/dev/null || touch %q\nsleep 0.5\nrmdir %q\n"+
		"[ \"$CNI_COMMAND\" = ADD ] && echo '{\"cniVersion\":\"1.0.0\"}'\nexit 0\n", running, overlap, running))
	conf := e.conf("", "slow")
	netns := newPodNS(t)
	var wg sync.WaitGroup
	runs := make([]pluginRun, 6)
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			verb := "ADD"
			if i%2 == 1 {
				verb = "DEL"
			}
			runs[i] = e.run(t, verbEnv(verb, "locked", netns, "eth0"), conf)
		}()
	}
	wg.Wait()
	if _, err := os.Stat(overlap); err == nil {
		t.Errorf("delegates of one container ran at once: %+v", runs)
	}
	if r := e.run(t, verbEnv("DEL", "locked", netns, "eth0"), conf); r.exit != 0 {
		t.Errorf("DEL: exit %d %s", r.exit, r.stdout)
	}
	if _, err := os.Stat(filepath.Join(e.cniDir, "locked.lock")); !os.IsNotExist(err) {
		t.Errorf("lock file left after DEL: %v", err)
	}
}

// delegateTimeout holds against a delegate whose child keeps its stdout (a script running
// sleep), and so does SIGTERM from the runtime: both took as long as the child (an ADD with a
// 5 s timeout returned after 45 s). The child dies with the delegate.
func TestDelegateTimeoutAndSIGTERM(t *testing.T) {
	nstest.RequireRoot(t)
	e := newScriptEnv(t)
	pidFile := filepath.Join(e.dir, "pid")
	e.script(t, "hang", fmt.Sprintf("cat >/dev/null\n[ \"$CNI_COMMAND\" = ADD ] || exit 0\nsleep 60 &\necho $! > %q\nwait\n", pidFile))
	netns := newPodNS(t)
	childGone := func() {
		t.Helper()
		data, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatalf("the delegate did not run: %v", err)
		}
		proc := "/proc/" + string(bytes.TrimSpace(data))
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			stat, err := os.ReadFile(proc + "/stat")
			if err != nil || bytes.Contains(stat, []byte(") Z ")) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the delegate's child %s is still running", proc)
			}
		}
	}

	start := time.Now()
	r := e.run(t, verbEnv("ADD", "timeout", netns, "eth0"), e.conf(`,"delegateTimeout":"1s"`, "hang"))
	if te := r.cniError(t, "ADD"); te == nil || !bytes.Contains(r.stdout, []byte("within 1s")) {
		t.Errorf("ADD: exit %d %s, want the timeout error", r.exit, r.stdout)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("ADD with a 1s delegateTimeout returned after %s", d)
	}
	childGone()
	_ = os.Remove(pidFile)

	cmd := exec.Command(steerBinary(t))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH=" + e.bin, "CNI_COMMAND=ADD",
		"CNI_CONTAINERID=sigterm", "CNI_NETNS=" + netns, "CNI_IFNAME=eth0"}
	cmd.Stdin = bytes.NewReader(e.conf(`,"delegateTimeout":"30s"`, "hang"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(pidFile); err == nil || time.Now().After(deadline) {
			break
		}
	}
	start = time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("steer still running 10s after SIGTERM")
	}
	t.Logf("exited %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	childGone()
	_ = e.run(t, verbEnv("DEL", "sigterm", netns, "eth0"), e.conf("", "hang"))
}
