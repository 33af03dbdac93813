package pluginmain

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/steernet/steer/pkg/netconf"
)

// NewLogger logs to logFile and/or stderr as conf says, at conf's level (info by default).
// The returned func closes the log file.
func NewLogger(conf *netconf.Conf) (*slog.Logger, func()) {
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
		f, err := openLogFile(conf.LogFile, conf.LogOptions)
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

// openLogFile opens the log file, rotated as logOptions say (as Multus rotates it). A
// character device (/dev/null) is written as it is: there is nothing to rotate.
func openLogFile(path string, o netconf.LogOptions) (io.WriteCloser, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	// Checked and created here (mode 0600, never a FIFO, which would block the plugin); the
	// rotating writer then appends to it and keeps its mode.
	f, err := netconf.OpenLogFile(path)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return f, nil
	}
	_ = f.Close()
	return &lumberjack.Logger{Filename: path, MaxAge: o.MaxAge, MaxSize: o.MaxSize, MaxBackups: o.MaxBackups, Compress: o.Compress}, nil
}
