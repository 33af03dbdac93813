package realnode

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"
)

// permanentErr ends a poll at once.
type permanentErr struct{ error }

func permanent(err error) error { return permanentErr{err} }

// poll calls f every 200 ms until it succeeds, returns a permanent error, ctx ends or timeout
// passes; the error names f's last failure.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanentErr
		if errors.As(err, &p) {
			return p.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func lookPath(tool string) (string, error) {
	p, err := exec.LookPath(tool)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH", tool)
	}
	return p, nil
}
