package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/steernet/steer/benchmarks/internal/report"
)

// cniDir holds the CNI benchmarks (package cni): ADD and DEL latency of steer against its
// delegates and Multus, thin and thick, and steerd at scale. Its output goes into the report
// verbatim. Go benchmarks are run with `go test -bench` as its doc.go says, a command with
// `go run`.
const cniDir = "./benchmarks/cni"

func runCNI(ctx context.Context, quick bool, log *slog.Logger) *report.CNI {
	files, _ := filepath.Glob(filepath.Join(cniDir, "*.go"))
	if len(files) == 0 {
		return nil
	}
	args := []string{"run", cniDir}
	switch {
	case hasBenchmarks(files):
		// As benchmarks/cni/doc.go says: the benchmark loops over its own iterations.
		args = []string{"test", "-count=1", "-run", "^$", "-bench", ".", "-benchtime", "1x", "-timeout", "40m", cniDir}
		if quick {
			args = append(args, "-args", "-iterations", "5", "-scale-pods", "20", "-burst", "20")
		}
	case quick:
		return &report.CNI{Command: "go " + strings.Join(args, " "), Err: "skipped with -quick (a command of unknown length)"}
	}
	log.Info("CNI ADD/DEL", "command", "go "+strings.Join(args, " "))
	// Six paths and the direct delegates, 30 pods each per row (~8 min on a shared 2-CPU VM),
	// then steerd at scale (~6 min).
	out, err := goCommand(ctx, 40*time.Minute, args)
	res := &report.CNI{Command: "go " + strings.Join(args, " "), Output: out}
	if err != nil {
		res.Err = err.Error()
	}
	return res
}

// goCommand runs `go args...`, bounded by timeout, and returns what it printed (stdout and
// stderr, interleaved as they came).
func goCommand(ctx context.Context, timeout time.Duration, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func hasBenchmarks(files []string) bool {
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte("func Benchmark")) {
			return true
		}
	}
	return false
}
