package datapath

// Verification cost: the collection is loaded at every pod ADD, so the verifier's work is paid
// per pod (about a microsecond per instruction it processes). TestVerifierCost loads every
// interface and group count the configuration allows and logs what the verifier processed;
// BenchmarkLoad measures Load+Close.
//
//	go test ./pkg/datapath -run TestVerifierCost -v
//	go test ./pkg/datapath -run '^$' -bench BenchmarkLoad -benchtime 50x

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// costConfig is a pod with n interfaces (slot 0 the primary, the others pinned secondaries with
// both families, gateways and alternating MTUs) and g multicast groups alternating IPv4 and IPv6,
// each taken by the primary and two other interfaces.
func costConfig(n, g int) Config {
	var cfg Config
	for i := range n {
		cfg.Interfaces = append(cfg.Interfaces, Interface{
			Name: fmt.Sprintf("n%d", i), Index: 100 + i, MTU: 1500 - 100*(i%2), MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(i)},
			Primary: i == 0, Pin: i != 0,
			Addr4:    netip.AddrFrom4([4]byte{10, byte(i), 0, 10}),
			Addr6:    netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(i), 15: 0x10}),
			Gateway4: netip.AddrFrom4([4]byte{10, byte(i), 0, 1}),
			Gateway6: netip.AddrFrom16([16]byte{0xfd, 0, 0, byte(i), 15: 1}),
		})
	}
	for i := range g {
		grp := Group{Interfaces: []string{"n0", fmt.Sprintf("n%d", i%n), fmt.Sprintf("n%d", (i+1)%n)}}
		if i%2 == 0 {
			grp.Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{239, byte(i), 0, 0}), 16+i)
		} else {
			grp.Prefix = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xff, 0x05, 14: byte(i)}), 64+4*i)
		}
		cfg.Groups = append(cfg.Groups, grp)
	}
	return cfg
}

var (
	processedRE  = regexp.MustCompile(`processed (\d+) insns`)
	verifyTimeRE = regexp.MustCompile(`verification time (\d+) usec`)
)

// verifierCost loads cfg with verifier statistics and describes what the verifier processed, per
// program and in all.
func verifierCost(t *testing.T, cfg Config) string {
	t.Helper()
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
	var (
		out       []string
		insns, us int
	)
	for name, p := range coll.Programs {
		m := processedRE.FindStringSubmatch(p.VerifierLog)
		if m == nil {
			t.Fatalf("%s: no statistics in the verifier log:\n%s", name, p.VerifierLog)
		}
		n, _ := strconv.Atoi(m[1])
		insns += n
		if m := verifyTimeRE.FindStringSubmatch(p.VerifierLog); m != nil {
			d, _ := strconv.Atoi(m[1])
			us += d
		}
		out = append(out, fmt.Sprintf("%s %d", name, n))
	}
	sort.Strings(out)
	return fmt.Sprintf("%s; total %d (verified in %.1f ms)", strings.Join(out, ", "), insns, float64(us)/1000)
}

// TestVerifierCost loads 1..MaxInterfaces interfaces with 0..MaxGroups groups through Load. It
// asserts only that loading works; what the verifier processed is logged for a few group counts.
func TestVerifierCost(t *testing.T) {
	prSkipUnlessRoot(t)
	for n := 1; n <= MaxInterfaces; n++ {
		for g := 0; g <= MaxGroups; g++ {
			cfg := costConfig(n, g)
			if g == 0 || g == 3 || g == MaxGroups {
				t.Logf("interfaces=%d groups=%2d: processed insns: %s", n, g, verifierCost(t, cfg))
			}
			objs, err := Load(cfg)
			if err != nil {
				t.Fatalf("Load with %d interfaces, %d groups: %v", n, g, err)
			}
			objs.Close()
		}
	}
}

// BenchmarkLoad measures Load+Close of a pod without multicast groups (most pods), with 1 to
// MaxInterfaces interfaces.
func benchmarkLoad(b *testing.B, n int) {
	prSkipUnlessRoot(b)
	cfg := costConfig(n, 0)
	for b.Loop() {
		objs, err := Load(cfg)
		if err != nil {
			b.Fatal(err)
		}
		objs.Close()
	}
}

func BenchmarkLoad1Interfaces(b *testing.B) { benchmarkLoad(b, 1) }
func BenchmarkLoad2Interfaces(b *testing.B) { benchmarkLoad(b, 2) }
func BenchmarkLoad4Interfaces(b *testing.B) { benchmarkLoad(b, 4) }
func BenchmarkLoad8Interfaces(b *testing.B) { benchmarkLoad(b, 8) }
