package datapath

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// TestProxyCarriesOlderMaps: a pod whose proxy an older build loaded keeps connection and
// reverse-NAT tables in the layout before connections had stamps and close flags. Loading this
// build's proxy replaces them with maps in its layout, each connection carried over with a zero
// stamp (stamped at its next packet, see svc_live), its port on the wire the socket's.
func TestProxyCarriesOlderMaps(t *testing.T) {
	objs := upgradeObjects(t)
	parsed, err := parsedSvcSpec()
	if err != nil {
		t.Fatal(err)
	}
	u32, u16 := &btf.Int{Name: "__u32", Size: 4}, &btf.Int{Name: "__u16", Size: 2}
	addr := parsed.Maps[svcMapSteerSvcRevnat].Value.(*btf.Struct).Members[0].Type
	older := map[string]btf.Type{
		svcMapSteerSvcConns: &btf.Struct{Name: "svc_conn", Size: 8, Members: []btf.Member{
			{Name: "backend", Type: u32}, {Name: "frontend", Type: u32, Offset: 32}}},
		svcMapSteerSvcRevnat: &btf.Struct{Name: "svc_rev", Size: 40, Members: []btf.Member{
			{Name: "client", Type: addr}, {Name: "frontend", Type: addr, Offset: 128},
			{Name: "port", Type: u16, Offset: 256}, {Name: "pad", Type: u16, Offset: 272}, {Name: "id", Type: u32, Offset: 288}}},
	}
	m := sharedServiceMaps(objs)
	key := make([]byte, parsed.Maps[svcMapSteerSvcConns].KeySize)
	key[0], key[1], key[2] = 2, 6, 0x9c // IPv4 TCP, port 40000 (0x9c40) in its first byte
	for name, vt := range older {
		ms := parsed.Maps[name].Copy()
		ms.Value, ms.ValueSize = vt, vt.(*btf.Struct).Size
		mp, err := ebpf.NewMap(ms)
		if err != nil {
			t.Fatalf("create an older %s: %v", name, err)
		}
		defer mp.Close()
		val := make([]byte, ms.ValueSize)
		if name == svcMapSteerSvcConns {
			binary.NativeEndian.PutUint32(val, 7)     // backend
			binary.NativeEndian.PutUint32(val[4:], 3) // frontend
			m.conns = mp
		} else {
			binary.BigEndian.PutUint16(val[32:], 80) // port
			binary.NativeEndian.PutUint32(val[36:], 3)
			m.revnat = mp
		}
		if err := mp.Put(key, val); err != nil {
			t.Fatal(err)
		}
	}
	carry, err := olderProxyMaps(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(carry) != 2 || m.conns != nil || m.revnat != nil {
		t.Fatalf("older maps found: %v", carry)
	}
	created, err := loadProxy(m, 0, carry)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if len(created) != len(svcMapTable)-4 {
		t.Errorf("created %v, want every map of the proxy", created)
	}
	var c svcSvcConn
	if err := m.conns.Lookup(key, &c); err != nil {
		t.Fatalf("connection not carried: %v", err)
	}
	if c.Backend != 7 || c.Frontend != 3 || c.SeenNs != 0 || c.Closing != 0 || c.NatPort != 0 {
		t.Errorf("connection carried as %+v", c)
	}
	var r svcSvcRev
	if err := m.revnat.Lookup(key, &r); err != nil {
		t.Fatalf("reverse NAT not carried: %v", err)
	}
	if beToHost(r.Port) != 80 || r.Id != 3 || r.ClientPort != 0 || r.SeenNs != 0 {
		t.Errorf("reverse NAT carried as %+v", r)
	}
	if again, err := olderProxyMaps(m); err != nil || len(again) != 0 {
		t.Errorf("this build's maps found older: %v %v", again, err)
	}
}

// TestProxyOfAnotherBuildReplaced: a pod's proxy whose maps this build reads but whose programs
// are another build's (here a stand-in returning SVC_PASS) gets this build's programs, its maps
// and what they hold kept; this build's proxy is left as it is, also by a process that has not
// loaded one yet.
func TestProxyOfAnotherBuildReplaced(t *testing.T) {
	objs := upgradeObjects(t)
	m := sharedServiceMaps(objs)
	if _, err := loadProxy(m, 0, nil); err != nil {
		t.Fatal(err)
	}
	defer closeProxyMaps(m)
	installed := func() *ebpf.ProgramInfo {
		t.Helper()
		var p *ebpf.Program
		if err := m.progs.Lookup(uint32(svcSteerSvcProgSTEER_SVC_PROG_EGRESS), &p); err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	ours := installed()
	ourID, _ := ours.ID()
	conns := m.conns
	if err := ensureProxy(m, t.TempDir(), 0); err != nil {
		t.Fatal(err)
	}
	if id, _ := installed().ID(); id != ourID {
		t.Error("this build's proxy was loaded again")
	}
	// As a steerd that has loaded no proxy yet (it just started) finds it.
	loadedProxyTag.Store(nil)
	if err := ensureProxy(m, t.TempDir(), 0); err != nil {
		t.Fatal(err)
	}
	if id, _ := installed().ID(); id != ourID {
		t.Error("this build's proxy was loaded again by a process that had loaded none")
	}
	other, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := m.progs.Update(uint32(svcSteerSvcProgSTEER_SVC_PROG_EGRESS), other, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if err := ensureProxy(m, t.TempDir(), 0); err != nil {
		t.Fatal(err)
	}
	if got := installed(); got.Tag != ours.Tag {
		t.Errorf("another build's proxy kept: tag %s, want %s", got.Tag, ours.Tag)
	}
	if m.conns != conns {
		t.Error("the connection table was replaced")
	}
}

// upgradeObjects loads, unattached, the programs of a pod with eth0 and a pinned net1: what an
// upgrade test installs a proxy over.
func upgradeObjects(t *testing.T) *Objects {
	t.Helper()
	prSkipUnlessRoot(t)
	objs, err := Load(Config{Interfaces: []Interface{
		{Name: "eth0", Index: 100, MTU: 1500, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Primary: true, Addr4: netip.MustParseAddr("10.0.0.10")},
		{Name: "net1", Index: 101, MTU: 1500, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Pin: true, Addr4: netip.MustParseAddr("10.1.0.10")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { objs.Close() })
	return objs
}
