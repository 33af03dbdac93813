package nstest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// A namespace mounted twice on its path (as when two test binaries made /run/netns a mount
// point at once) is still removed when its test ends. testutils.UnmountNS unmounted one mount,
// failed to remove the file (EBUSY), and the ignored error left a cnitest-* namespace behind.
func TestNewNSRemovedWhenMountedTwice(t *testing.T) {
	RequireRoot(t)
	var path string
	t.Run("inner", func(t *testing.T) {
		n := NewNS(t)
		path = n.Path()
		if err := unix.Mount(path, path, "none", unix.MS_BIND, ""); err != nil {
			t.Fatalf("stack a second mount: %v", err)
		}
	})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("%s left behind (%v)", path, err)
		_ = RemoveNS(path)
	}
}
