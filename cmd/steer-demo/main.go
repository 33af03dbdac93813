// Command steer-demo brings up a local cluster (a real kube-apiserver and etcd on loopback,
// pods as network namespaces) and walks through what Steer does. Run it with `make demo`.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/steernet/steer/pkg/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "steer-demo: run as root (it creates network namespaces and loads BPF programs)")
		os.Exit(1)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := demo.Run(ctx, os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "steer-demo:", err)
		os.Exit(1)
	}
}
