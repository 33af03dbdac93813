package netconf

import (
	"fmt"
	"os"
	"syscall"
)

// OpenRegular opens path only if it is a regular file, and without blocking: a FIFO named in
// the configuration used to block the plugin for ever, SIGTERM included.
func OpenRegular(path string, flag int, perm os.FileMode) (*os.File, error) {
	return openChecked(path, flag, perm, false)
}

// OpenLogFile opens a log file for appending, creating it; a regular file or a character
// device (/dev/null) only: a FIFO would block, or, as /dev/stdout, mix logs into the result.
func OpenLogFile(path string) (*os.File, error) {
	return openChecked(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600, true)
}

func openChecked(path string, flag int, perm os.FileMode, devices bool) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK|syscall.O_NOCTTY, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if m := fi.Mode(); !m.IsRegular() && !(devices && m&os.ModeCharDevice != 0) {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, m.Type())
	}
	return f, nil
}
