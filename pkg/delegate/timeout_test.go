package delegate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestTimeoutKillsHungPlugin: a plugin still running at Timeout is killed and the error says
// so; a deadline of the caller's own is reported as the caller's, not as the delegate timeout.
func TestTimeoutKillsHungPlugin(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\nexec sleep 30\n"
	if err := os.WriteFile(filepath.Join(dir, "hang"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	n, err := Parse([]byte(`{"cniVersion":"1.0.0","name":"stuck","type":"hang"}`), "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner([]string{dir}, t.TempDir(), nil)
	r.Timeout = 200 * time.Millisecond

	start := time.Now()
	_, err = r.Add(context.Background(), n, target("net1"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Add = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Add returned after %s: the plugin was not killed at the timeout", d)
	}

	r.Timeout = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err = r.Add(ctx, n, target("net1")); err == nil || errors.Is(err, ErrTimeout) {
		t.Errorf("Add under the caller's deadline = %v, want an error that is not ErrTimeout", err)
	}
}
