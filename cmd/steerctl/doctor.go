package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/install"
)

// check is one line of `steerctl doctor`.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// doctor checks what Steer needs on this node; it fails when any check fails.
func (c cli) doctor(confDir string) error {
	checks := []check{kernelCheck(), btfCheck(), bpffsCheck(c.layout.Root)}
	cfg, socket := cniConfigCheck(confDir)
	checks = append(checks, cfg)
	if socket != "" {
		checks = append(checks, socketCheck(socket))
	}
	checks = append(checks, c.stalePinsCheck(), c.versionsCheck())

	failed := 0
	for _, ch := range checks {
		if !ch.OK {
			failed++
		}
	}
	if c.json {
		if err := json.NewEncoder(c.out).Encode(checks); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
		for _, ch := range checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", ch.Name, map[bool]string{true: "ok", false: "FAIL"}[ch.OK], ch.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	return nil
}

func kernelCheck() check {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return check{"kernel", false, err.Error()}
	}
	release := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	fmt.Sscanf(release, "%d.%d", &major, &minor)
	if major > 6 || major == 6 && minor >= 6 {
		return check{"kernel", true, release + ": TCX links"}
	}
	if major >= 5 && minor >= 10 || major > 5 {
		return check{"kernel", true, release + ": no TCX, legacy TC (clsact + cls_bpf) is used"}
	}
	return check{"kernel", false, release + ": Steer needs 5.10 or later"}
}

func btfCheck() check {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return check{"btf", false, "no /sys/kernel/btf/vmlinux: the kernel was built without BTF"}
	}
	return check{"btf", true, "/sys/kernel/btf/vmlinux"}
}

func bpffsCheck(root string) check {
	mnt := filepath.Dir(root)
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		return check{"bpffs", false, mnt + " is not a bpffs (the plugin mounts one at its first ADD)"}
	}
	return check{"bpffs", true, mnt}
}

// cniConfigCheck verifies Steer's config is the one the runtime uses, and returns the daemon
// socket it names.
func cniConfigCheck(dir string) (check, string) {
	path := filepath.Join(dir, install.ConfigName)
	b, err := os.ReadFile(path)
	if err != nil {
		return check{"cni-config", false, fmt.Sprintf("%s: %v", path, err)}, ""
	}
	var conf struct {
		Plugins []struct {
			Type       string `json:"type"`
			SocketPath string `json:"socketPath"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil || len(conf.Plugins) == 0 || !api.IsSteerType(conf.Plugins[0].Type) {
		return check{"cni-config", false, path + ": not a Steer config list"}, ""
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) > 0 && names[0] != install.ConfigName {
		return check{"cni-config", false, fmt.Sprintf("%s sorts before %s: the runtime uses it instead", names[0], install.ConfigName)}, conf.Plugins[0].SocketPath
	}
	return check{"cni-config", true, path}, conf.Plugins[0].SocketPath
}

func socketCheck(path string) check {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return check{"steerd", false, fmt.Sprintf("%s: %v (thick mode ADDs fail until steerd runs)", path, err)}
	}
	c.Close()
	return check{"steerd", true, path}
}

// versionsCheck finds attachments whose programs are not this build's (steerctl ships with
// steerd): pods steerd has not upgraded, an upgrade left half-way, programs of two builds.
func (c cli) versionsCheck() check {
	obj, err := datapath.Embedded()
	if err != nil {
		return check{"versions", false, err.Error()}
	}
	ids, err := c.layout.Containers()
	if err != nil {
		return check{"versions", false, err.Error()}
	}
	var bad []string
	for _, id := range ids {
		if problems := datapath.CheckVersion(c.layout, id, "", obj.Version); len(problems) > 0 {
			bad = append(bad, fmt.Sprintf("%s: %v", id, errors.Join(problems...)))
		}
	}
	if len(bad) > 0 {
		return check{"versions", false, fmt.Sprintf("%d of %d attachments not wholly at %s (steerd upgrades them when it starts): %s",
			len(bad), len(ids), obj.Version, strings.Join(bad, "; "))}
	}
	return check{"versions", true, fmt.Sprintf("%d attachments, all at %s", len(ids), obj.Version)}
}

func (c cli) stalePinsCheck() check {
	ids, err := c.layout.Containers()
	if err != nil {
		return check{"pins", false, err.Error()}
	}
	var stale []string
	for _, id := range ids {
		if dead, err := datapath.Defunct(c.layout, id); err == nil && dead {
			stale = append(stale, id)
		}
	}
	if len(stale) > 0 {
		return check{"pins", false, fmt.Sprintf("%d of %d attachments outlived their pod: %s (steerd collects them)", len(stale), len(ids), strings.Join(stale, ", "))}
	}
	return check{"pins", true, fmt.Sprintf("%d attachments, none stale", len(ids))}
}
