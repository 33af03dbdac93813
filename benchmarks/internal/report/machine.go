package report

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes where a run happened: the figures mean little without it.
type Machine struct {
	Host, Kernel, CPU   string
	CPUs                int
	MemoryGiB           float64
	Go, Ebpf            string
	Iperf               string
	Commit              string // git HEAD, "+dirty" with local changes
	Object              string // sha256 of the BPF object measured, shortened
	LoadBefore, LoadEnd string // /proc/loadavg: other users of the machine
}

// Describe reads the machine; object is the BPF object file the run measured.
func Describe(object string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadBefore: loadavg()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Host = unix.ByteSliceToString(u.Nodename[:])
		m.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Version[:])
	}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		m.MemoryGiB = float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	}
	m.CPU = cpuModel()
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/cilium/ebpf" {
				m.Ebpf = d.Version
			}
		}
	}
	if out, err := exec.Command("iperf3", "--version").Output(); err == nil {
		m.Iperf, _, _ = strings.Cut(string(out), "\n")
	}
	m.Commit = commit()
	if b, err := os.ReadFile(object); err == nil {
		sum := sha256.Sum256(b)
		m.Object = hex.EncodeToString(sum[:])[:12]
	}
	return m
}

// Finish records the load at the end of the run.
func (m *Machine) Finish() { m.LoadEnd = loadavg() }

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "?"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "+dirty"
	}
	return c
}
