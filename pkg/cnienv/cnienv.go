// Package cnienv checks what a container runtime hands a CNI verb in its environment
// (CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS) before anything acts on it: the plugin, steer-shim and
// steerd refuse the same values with the same codes.
package cnienv

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"github.com/containernetworking/cni/pkg/types"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/netconf"
)

func cniError(code uint, format string, a ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, a...), "")
}

// ValidateIdentity checks CNI_CONTAINERID and CNI_IFNAME (error code 4, naming the variable).
// The container ID names cache files and the pin directory, so it must not escape them; the
// interface name is part of cache and device-info file names and goes to every delegate of the
// cluster network.
func ValidateIdentity(containerID, ifName string) error {
	if err := bpffs.ValidContainerID(containerID); err != nil {
		return cniError(types.ErrInvalidEnvironmentVariables, "CNI_CONTAINERID: %v", err)
	}
	if err := netconf.ValidateInterfaceName(ifName); err != nil {
		return cniError(types.ErrInvalidEnvironmentVariables, "CNI_IFNAME: %v", err)
	}
	return nil
}

// CheckNetns checks CNI_NETNS before ADD or CHECK does anything: it must be a network
// namespace, and not the caller's own. Given the host's, an ADD would run every delegate and
// steering on the host's interfaces (skel only notices once the verb is done).
func CheckNetns(path string) error {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return cniError(types.ErrInvalidNetNS, "CNI_NETNS %q does not exist", path)
		}
		return cniError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS %q: %v", path, err)
	}
	if sfs.Type != unix.NSFS_MAGIC && sfs.Type != unix.PROC_SUPER_MAGIC {
		return cniError(types.ErrInvalidEnvironmentVariables, "CNI_NETNS %q is not a network namespace", path)
	}
	if IsOwnNetns(path) {
		return cniError(types.ErrInvalidNetNS, "CNI_NETNS %q is the plugin's own network namespace (the host's): refusing to configure it", path)
	}
	return nil
}

// IsOwnNetns reports whether path is the network namespace the calling thread runs in, which
// for the plugin and steerd is the host's.
func IsOwnNetns(path string) bool {
	var target, own unix.Stat_t
	if path == "" || unix.Stat(path, &target) != nil {
		return false
	}
	runtime.LockOSThread() // the namespace is per thread
	defer runtime.UnlockOSThread()
	if unix.Stat("/proc/thread-self/ns/net", &own) != nil {
		return false
	}
	return target.Dev == own.Dev && target.Ino == own.Ino
}
