package netconf

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// within fails the test if fn has not returned after a few seconds; unblock then releases it.
func within(t *testing.T, what string, unblock func(), fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		unblock()
		t.Fatalf("%s blocked", what)
		return nil
	}
}

// A FIFO (or any non-regular file) as clusterNetwork, in confDir or as logFile is refused at
// once; it used to block the plugin for ever.
func TestConfigPathsMustBeRegularFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "10-net.conf")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Releases an open blocked on the FIFO, so that the test binary does not hang.
	unblock := func() {
		if f, err := os.OpenFile(fifo, os.O_RDWR, 0); err == nil {
			f.Close()
		}
	}
	if err := within(t, "clusterNetwork FIFO", unblock, func() error {
		_, err := ClusterNetworkConfig(fifo, dir)
		return err
	}); err == nil {
		t.Error("ClusterNetworkConfig(FIFO) succeeded")
	} else {
		t.Log(err)
	}
	if err := within(t, "confDir with a FIFO", unblock, func() error {
		_, err := ClusterNetworkConfig("net", dir)
		return err
	}); err == nil {
		t.Error("a FIFO in confDir was read")
	}
	if err := within(t, "confDir as clusterNetwork", unblock, func() error {
		_, err := ClusterNetworkConfig(dir, dir)
		return err
	}); err == nil {
		t.Error("ClusterNetworkConfig(dir with a FIFO) succeeded")
	}
	// A log FIFO with a reader would open: refused as not a regular file.
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := within(t, "log FIFO", unblock, func() error {
		f, err := OpenLogFile(fifo)
		if err == nil {
			f.Close()
		}
		return err
	}); err == nil {
		t.Error("OpenLogFile(FIFO) succeeded")
	}
	for _, ok := range []string{filepath.Join(dir, "steer.log"), os.DevNull} {
		f, err := OpenLogFile(ok)
		if err != nil {
			t.Errorf("OpenLogFile(%s): %v", ok, err)
			continue
		}
		f.Close()
	}
}
