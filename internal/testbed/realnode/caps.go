package realnode

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// capabilityBits are the Linux capabilities a DaemonSet may add, by number.
var capabilityBits = map[string]uint{
	"NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "SYS_MODULE": 16, "SYS_CHROOT": 18,
	"SYS_PTRACE": 19, "SYS_ADMIN": 21, "SYS_NICE": 23, "SYS_RESOURCE": 24, "SYS_TIME": 25,
	"PERFMON": 38, "BPF": 39, "CHECKPOINT_RESTORE": 40,
}

// missingCapability tells whether the machine's bounding set lacks a capability a container
// asks for: runc cannot grant it ("unable to apply caps: operation not permitted"). Sandboxed
// hosts (this one lacks CAP_SYS_RESOURCE) drop some.
func missingCapability(name string) bool {
	bit, ok := capabilityBits[strings.TrimPrefix(name, "CAP_")]
	if !ok {
		return false
	}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapBnd:"); ok {
			set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && set&(1<<bit) == 0
		}
	}
	return false
}
