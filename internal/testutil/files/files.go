// Package files lists what tests leave on disk.
package files

import (
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
)

// Below lists the regular files below dir, relative to it (none when dir does not exist).
func Below(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
