package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/steernet/steer/pkg/netconf"
)

// newLogger logs to logFile and/or stderr as conf says, at conf's level (info by default).
// The returned func closes the log file.
func newLogger(conf *netconf.Conf) (*slog.Logger, func()) {
	level, ok := netconf.SlogLevel(conf.LogLevel)
	if !ok {
		level = slog.LevelInfo
	}
	var writers []io.Writer
	closeFn := func() {}
	if conf.LogToStderr {
		writers = append(writers, os.Stderr)
	}
	if conf.LogFile != "" {
		f, err := openLogFile(conf.LogFile)
		if err != nil {
			// Logging must not fail the pod; say it where the runtime will see it.
			fmt.Fprintf(os.Stderr, "steer: %v; logging to stderr\n", err)
			if !conf.LogToStderr {
				writers = append(writers, os.Stderr)
			}
		} else {
			writers = append(writers, f)
			closeFn = func() { _ = f.Close() }
		}
	}
	if len(writers) == 0 {
		return slog.New(slog.DiscardHandler), closeFn
	}
	h := slog.NewTextHandler(io.MultiWriter(writers...), &slog.HandlerOptions{Level: level})
	log := slog.New(h).With("pid", os.Getpid())
	for _, w := range conf.Warnings {
		log.Warn(w)
	}
	return log, closeFn
}

func openLogFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	f, err := netconf.OpenLogFile(path)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}
