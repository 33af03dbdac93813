package bpffs

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestValidContainerID(t *testing.T) {
	good := []string{"abc", "0123456789abcdef", "a.b-c_d", strings.Repeat("a", 255)}
	bad := []string{"", "..", ".", "../x", "a/b", "a\x00b", "-a", strings.Repeat("a", 256), "ünïcode", "a b"}
	for _, id := range good {
		if err := ValidContainerID(id); err != nil {
			t.Errorf("ValidContainerID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range bad {
		if err := ValidContainerID(id); err == nil {
			t.Errorf("ValidContainerID(%q) = nil, want error", id)
		}
	}
}

func TestLayoutDir(t *testing.T) {
	l := Layout{Root: "/sys/fs/bpf/steer"}
	dir, err := l.Dir("c1")
	if err != nil || dir != "/sys/fs/bpf/steer/c1" {
		t.Fatalf("Dir(c1) = %q, %v", dir, err)
	}
	if _, err := l.Dir("../etc"); err == nil {
		t.Fatal("Dir(../etc) succeeded")
	}
}

func TestCheckRoot(t *testing.T) {
	for _, root := range []string{"", "steer", "./steer", "/", "/sys/fs/bpf", "/sys/fs/bpf/", "/sys/fs/bpf/../steer", "/sys/fs/bpf//steer"} {
		if err := CheckRoot(root); err == nil {
			t.Errorf("CheckRoot(%q) = nil, want an error", root)
		}
	}
	for _, root := range []string{DefaultRoot, "/sys/fs/bpf/steer-test", "/run/steer/bpf"} {
		if err := CheckRoot(root); err != nil {
			t.Errorf("CheckRoot(%q) = %v", root, err)
		}
	}
}

// inPrivateMountNS runs fn on a thread of its own in a new mount namespace whose mounts do not
// propagate to the host, so that a regression mounts nothing on the machine. The thread is
// never unlocked: it exits with the goroutine, and the namespace and its mounts with it.
func inPrivateMountNS(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a mount namespace")
	}
	done := make(chan error, 1)
	go func() {
		var err error
		// Deferred: fn may end the goroutine with t.Fatal (runtime.Goexit).
		defer func() { done <- err }()
		runtime.LockOSThread()
		if err = unix.Unshare(unix.CLONE_NEWNS); err != nil {
			return
		}
		if err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return
		}
		fn()
	}()
	if err := <-done; err != nil {
		t.Fatalf("private mount namespace: %v", err)
	}
}

func fsType(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Errorf("statfs %s: %v", path, err)
	}
	return st.Type
}

// EnsureMounted used to mount a bpffs on the parent of any root that was not on one: with
// "bpffsRoot": "/sys/fs/bpf" it hid /sys/fs (cgroupfs and the real bpffs) for the whole host.
func TestEnsureMountedRefusesUnsafeRoots(t *testing.T) {
	inPrivateMountNS(t, func() {
		sysfs := fsType(t, "/sys/fs")
		for _, root := range []string{"/sys/fs/bpf", "/sys/fs/steer", "/sys/steer"} {
			if err := (Layout{Root: root}).EnsureMounted(); err == nil {
				t.Errorf("EnsureMounted(%s) succeeded", root)
			} else {
				t.Logf("EnsureMounted(%s): %v", root, err)
			}
			if got := fsType(t, "/sys/fs"); got != sysfs {
				t.Fatalf("/sys/fs is now of type %#x (was %#x): a bpffs was mounted over it", got, sysfs)
			}
		}

		// A directory with entries, and an empty mount point of another file system.
		dir := t.TempDir()
		full, mnt := filepath.Join(dir, "full"), filepath.Join(dir, "tmpfs")
		keep := filepath.Join(full, "keep")
		if err := os.MkdirAll(full, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keep, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
			t.Fatal(err)
		}
		for _, parent := range []string{full, mnt} {
			root := filepath.Join(parent, "steer")
			if err := (Layout{Root: root}).EnsureMounted(); err == nil {
				t.Errorf("EnsureMounted(%s) succeeded", root)
			}
			if fsType(t, parent) == unix.BPF_FS_MAGIC {
				t.Errorf("a bpffs was mounted on %s", parent)
				_ = unix.Unmount(parent, unix.MNT_DETACH)
			}
		}
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("%s hidden: %v", keep, err)
		}
	})
}

// On a fresh node (nothing on /sys/fs/bpf) the bpffs is mounted there; on a bpffs the root is
// just created, at any depth.
func TestEnsureMountedFreshNodeAndExistingBPFFS(t *testing.T) {
	inPrivateMountNS(t, func() {
		for fsType(t, MountPoint) == unix.BPF_FS_MAGIC {
			if err := unix.Unmount(MountPoint, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s in the test's namespace: %v", MountPoint, err)
				return
			}
		}
		root := MountPoint + "/steer-test/pins"
		if err := (Layout{Root: root}).EnsureMounted(); err != nil {
			t.Fatalf("EnsureMounted(%s) on a fresh node: %v", root, err)
		}
		if fsType(t, root) != unix.BPF_FS_MAGIC {
			t.Errorf("%s is not on a bpffs", root)
		}
		if err := (Layout{Root: root}).EnsureMounted(); err != nil {
			t.Errorf("EnsureMounted again: %v", err)
		}

		own := t.TempDir()
		if err := unix.Mount("bpffs", own, "bpf", 0, "mode=0700"); err != nil {
			t.Fatal(err)
		}
		deep := filepath.Join(own, "a", "b", "steer")
		if err := (Layout{Root: deep}).EnsureMounted(); err != nil {
			t.Errorf("EnsureMounted(%s) on a bpffs: %v", deep, err)
		}
		if fi, err := os.Stat(deep); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", deep, err)
		}
	})
}

func TestParseLinkPin(t *testing.T) {
	for _, ifname := range []string{"eth0", "net1", "net-1", "a-ingress"} {
		for _, hook := range LinkHooks {
			got, gotHook, ok := ParseLinkPin(LinkPin(ifname, hook))
			if !ok || got != ifname || gotHook != hook {
				t.Errorf("ParseLinkPin(LinkPin(%q, %q)) = %q, %q, %v", ifname, hook, got, gotHook, ok)
			}
		}
	}
	for _, name := range []string{"flows", "config", "link-", "link--egress", "link-eth0", "link-eth0-tc", "svc-state"} {
		if ifname, hook, ok := ParseLinkPin(name); ok {
			t.Errorf("ParseLinkPin(%q) = %q, %q, true; want not a link pin", name, ifname, hook)
		}
	}
}
