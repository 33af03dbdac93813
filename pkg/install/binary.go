// Package install puts Steer on a node: the plugin binary into the CNI bin directory and the
// CNI config that wraps the node's primary network into the CNI conf directory, both
// atomically, and takes them away again in the order that keeps the node working. On a node
// running Multus it takes Multus' config over, keeping its keys, and hands it back on
// uninstall (see multus.go).
package install

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Binary copies src to dir/name atomically: a temporary file in the same directory, synced,
// then renamed over the old one. A running copy of the old binary keeps its inode, so this
// never fails with "text file busy" and no caller ever sees a half-written binary.
func Binary(src, dir, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeAtomic(filepath.Join(dir, name), 0o755, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// writeAtomic writes path through a temporary file in its directory, fsyncs the file and the
// directory, and renames it into place.
func writeAtomic(path string, mode os.FileMode, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
