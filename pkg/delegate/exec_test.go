package delegate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// scriptRunner installs sh plugins in a directory of their own and returns a Runner with the
// default Exec, whose stderr goes to the returned buffer.
func scriptRunner(t *testing.T, scripts map[string]string) (*Runner, *bytes.Buffer, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var stderr bytes.Buffer
	return NewRunner([]string{dir}, t.TempDir(), &Exec{Stderr: &stderr}), &stderr, dir
}

func network(t *testing.T, typ string) *Network {
	t.Helper()
	n, err := Parse([]byte(`{"cniVersion":"1.0.0","name":"`+typ+`-net","type":"`+typ+`"}`), "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitGone waits for the process whose pid is in file to be gone (or a zombie).
func waitGone(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			_ = killPid(pid)
			t.Fatalf("process %d the plugin started is still running", pid)
		}
	}
}

func killPid(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// A delegate whose child holds stdout (a script running sleep): killing the script alone left
// the child, and the run waited for it (45 s for a 5 s timeout). The whole process group is
// killed at the deadline and the run returns at once.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	r, _, _ := scriptRunner(t, map[string]string{"hang": "sleep 60 &\necho $! > " + pidFile + "\nwait\n"})
	r.Timeout = 300 * time.Millisecond
	start := time.Now()
	_, err := r.Add(context.Background(), network(t, "hang"), target("net1"))
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("Add = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Add returned after %s, timeout %s", d, r.Timeout)
	}
	waitGone(t, pidFile)
}

// A delegate that exits but leaves a child holding its stdout: the run does not wait for the
// child, which is killed, and says why it failed.
func TestChildHoldingPipesDoesNotBlock(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	r, _, _ := scriptRunner(t, map[string]string{"leaver": "sleep 60 &\necho $! > " + pidFile + "\necho '{\"cniVersion\":\"1.0.0\"}'\n"})
	start := time.Now()
	_, err := r.Add(context.Background(), network(t, "leaver"), target("net1"))
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Add returned after %s", d)
	}
	var te *types.Error
	if !errors.As(err, &te) || te.Code != types.ErrInternal || !strings.Contains(te.Msg, "held its output open") {
		t.Errorf("Add = %v, want code 999 saying the output was held open", err)
	}
	waitGone(t, pidFile)
}

// However a delegate fails, the error is a CNI error with a non-zero code (0 means success to
// a runtime) and a bounded message; stderr passed on is bounded too.
func TestPluginFailuresHaveCodeAndBounds(t *testing.T) {
	huge := "head -c 10000000 /dev/zero | tr '\\0' x"
	r, stderr, _ := scriptRunner(t, map[string]string{
		"garbage":     "echo 'not json at all'\nexit 1\n",
		"killed":      "kill -9 $$\n",
		"codezero":    `echo '{"code":0,"msg":"it broke"}'` + "\nexit 1\n",
		"hugestderr":  huge + " >&2\nexit 1\n",
		"hugeerror":   `printf '{"code":7,"msg":"'; head -c 500000 /dev/zero | tr '\0' x; printf '"}'` + "\nexit 1\n",
		"hugestdout":  huge + "\n",
		"ok-noisy":    huge + " >&2\necho '{\"cniVersion\":\"1.0.0\"}'\n",
		"plugin-code": `echo '{"code":105,"msg":"vendor error"}'` + "\nexit 1\n",
	})
	for typ, code := range map[string]uint{
		"garbage": types.ErrInternal, "killed": types.ErrInternal, "codezero": types.ErrInternal,
		"hugestderr": types.ErrInternal, "hugeerror": types.ErrInvalidNetworkConfig,
		"hugestdout": types.ErrInternal, "plugin-code": 105,
	} {
		_, err := r.Add(context.Background(), network(t, typ), target("net1"))
		var te *types.Error
		switch {
		case !errors.As(err, &te):
			t.Errorf("%s: %v (%T), want a *types.Error", typ, err, err)
		case te.Code != code:
			t.Errorf("%s: code %d (%.200s), want %d", typ, te.Code, te.Msg, code)
		case len(te.Error()) > 3*maxQuoted:
			t.Errorf("%s: error of %d bytes", typ, len(te.Error()))
		default:
			t.Logf("%s: %d, %d bytes", typ, te.Code, len(te.Error()))
		}
	}
	stderr.Reset()
	if _, err := r.Add(context.Background(), network(t, "ok-noisy"), target("net1")); err != nil {
		t.Errorf("ok-noisy: %v", err)
	}
	if stderr.Len() > MaxStderr+100 || stderr.Len() < MaxStderr {
		t.Errorf("%d bytes of stderr passed on, want about %d", stderr.Len(), MaxStderr)
	}
}

// Plugins are found and run by absolute path only: a relative CNI_PATH entry ("."), joined
// with the type, made exec look the plugin up in $PATH.
func TestRelativePluginPathsRefused(t *testing.T) {
	_, _, dir := scriptRunner(t, map[string]string{"fake": "echo '{\"cniVersion\":\"1.0.0\"}'\n"})
	t.Chdir(dir)
	e := &Exec{}
	if p, err := e.FindInPath("fake", []string{".", "bin"}); err == nil {
		t.Errorf("FindInPath in relative directories found %q", p)
	}
	if p, err := e.FindInPath("fake", []string{".", dir}); err != nil || p != filepath.Join(dir, "fake") {
		t.Errorf("FindInPath = %q, %v", p, err)
	}
	if _, err := e.ExecPlugin(context.Background(), "sh", nil, nil); err == nil {
		t.Error("ExecPlugin ran a plugin by a relative path")
	}
}
