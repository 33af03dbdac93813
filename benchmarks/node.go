package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/steernet/steer/benchmarks/internal/report"
)

// nodeDir holds the real-node benchmark (package node): pod start and deletion under kubelet
// and containerd, Steer against Multus. Its results, markdown, go into the report verbatim.
const nodeDir = "./benchmarks/node"

func runNode(ctx context.Context, pods int, log *slog.Logger) *report.CNI {
	tmp, err := os.MkdirTemp("", "steer-bench-node-")
	if err != nil {
		return &report.CNI{Err: err.Error()}
	}
	defer os.RemoveAll(tmp)
	results := filepath.Join(tmp, "node.md")
	args := []string{"test", "-count=1", "-run", "^$", "-bench", "^BenchmarkNode$", "-benchtime", "1x", "-timeout", "90m", nodeDir,
		"-args", "-pods", fmt.Sprint(pods), "-out", results}
	command := "go " + strings.Join(args[:len(args)-2], " ")
	log.Info("pods on a real node", "command", command)
	// Five peers, nine rows, about 3 s a pod on a shared 2-CPU VM: ~25 min at 20 pods a row.
	out, err := goCommand(ctx, 90*time.Minute, args)
	res := &report.CNI{Command: command, Output: out}
	if err == nil {
		var md []byte
		if md, err = os.ReadFile(results); err == nil {
			res.Output = string(md) // the benchmark's results; its log only when it failed
		}
	}
	if err != nil {
		res.Err = err.Error()
	}
	return res
}
