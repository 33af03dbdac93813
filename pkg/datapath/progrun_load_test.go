package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

func TestProgRunLoad(t *testing.T) {
	prSkipUnlessRoot(t)
	cfg := Config{FlowEntries: 1 << 16, LoopMark: 0x4}
	for i := range MaxInterfaces {
		cfg.Interfaces = append(cfg.Interfaces, Interface{
			Name: fmt.Sprintf("n%d", i), Index: 100 + i, MTU: 1500, MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)},
			Primary: i == 0, Pin: i != 0,
			Addr4:    netip.AddrFrom4([4]byte{10, byte(i), 0, 10}),
			Addr6:    netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(i), 15: 0x10}),
			Gateway4: netip.AddrFrom4([4]byte{10, byte(i), 0, 1}),
			Gateway6: netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(i), 15: 1}),
		})
	}
	for i := range MaxGroups {
		g := Group{Interfaces: []string{"n0", fmt.Sprintf("n%d", i%MaxInterfaces)}}
		if i%2 == 0 {
			g.Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{239, byte(i), 0, 0}), 16+i)
		} else {
			g.Prefix = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xff, 0x05, 14: byte(i)}), 64+4*i)
		}
		cfg.Groups = append(cfg.Groups, g)
	}

	spec, err := loadSteer()
	if err != nil {
		t.Fatal(err)
	}
	if err := configure(spec, &cfg); err != nil {
		t.Fatal(err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats},
	})
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		t.Fatalf("verifier rejected the programs:\n%+v", verr)
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	defer coll.Close()
	for name, p := range coll.Programs {
		t.Logf("%s: %s", name, lastLine(p.VerifierLog))
	}

	// And through Load, as the plugin does.
	objs, err := Load(cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	objs.Close()
}

func lastLine(s string) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(s)), []byte("\n"))
	return string(lines[len(lines)-1])
}

// Frames.

// prL4 is a transport header: "tcp" (an ACK), "udp" or "icmp" (an echo request with sport as
// its id, or a reply when reply is set).

// TestLoadCloseUnmapsEverything: after Close, the process maps none of the collection's maps
// into memory. A memory-mapped variable keeps its map alive in the kernel until the garbage
// collector unmaps it: steerd would hold two maps per pod it attached.
func TestLoadCloseUnmapsEverything(t *testing.T) {
	prSkipUnlessRoot(t)
	// Other tests' collections may still be mapped: let the GC release them first, then keep
	// it off, so that only an unmap done by Close itself counts.
	runtime.GC()
	before := mappedBPFMaps(t)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond) // cleanups run on their own goroutine
		n := mappedBPFMaps(t)
		if n == before {
			break
		}
		before = n
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for range 3 {
		objs, err := Load(Config{Interfaces: []Interface{{Name: "eth0", Index: 2, MTU: 1500, Primary: true}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := objs.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := mappedBPFMaps(t); after > before {
		t.Errorf("BPF maps mapped into the process: %d before, %d after three Load/Close", before, after)
	}
}

// mappedBPFMaps counts the process's memory mappings of BPF maps.
func mappedBPFMaps(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("anon_inode:bpf-map"))
}
