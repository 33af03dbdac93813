package datapath

import (
	"bytes"
	"encoding/binary"
	"maps"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// The decoders of the pinned maps are fed raw bytes here, as a corrupt pin or `bpftool map
// dump` would give them. Seeds are also committed under testdata/fuzz/<FuzzName>/, which plain
// `go test` replays; hack/fuzz.sh runs the fuzzers for a while.

// decIfaces are the interfaces the fuzzed flows are named against.
var decIfaces = []Interface{
	{Name: "eth0", Index: 2, Primary: true},
	{Name: "net1", Index: 5, Pin: true},
	{Name: "net2", Index: 7, Pin: true},
}

var decPeerMAC = net.HardwareAddr{0x02, 0x42, 0xc0, 0x00, 0x02, 0x01}

// decHtons is a port as the flow key holds it (network order, read as a host integer).
func decHtons(p uint16) uint16 { return ntohs(p) } // a byte swap either way

// decFlowBytes lays a flow entry out as the programs write it.
func decFlowBytes(family, proto uint8, remote netip.Addr, rport, lport uint16, ifindex uint32, peer net.HardwareAddr, local netip.Addr) (key, value []byte) {
	k := steerFlowKey{Family: family, Proto: proto, RemotePort: decHtons(rport), LocalPort: decHtons(lport)}
	k.Remote.V6 = AddrBytes(remote)
	v := steerFlowValue{Ifindex: ifindex}
	copy(v.PeerMac[:], peer)
	copy(v.LocalMac[:], []byte{0x02, 0x42, 0xc0, 0x00, 0x02, 0x02})
	v.Local.V6 = AddrBytes(local)
	return decMarshal(k), decMarshal(v)
}

func decMarshal(x any) []byte {
	b, err := binary.Append(nil, binary.NativeEndian, x)
	if err != nil {
		panic(err)
	}
	return b
}

// decEncodeFlow is decodeFlow's inverse: the entry the programs would have written for f.
func decEncodeFlow(f Flow, ifaces []Interface) (key, value []byte) {
	family := uint8(syscall.AF_INET6)
	if f.Remote.Addr().Is4() {
		family = syscall.AF_INET
	}
	var ifindex uint32
	for _, itf := range ifaces {
		if itf.Name == f.Interface && f.Interface != "" {
			ifindex = uint32(itf.Index)
			break
		}
	}
	return decFlowBytes(family, f.Proto, f.Remote.Addr(), f.Remote.Port(), f.LocalPort, ifindex, f.PeerMAC, f.Local)
}

func TestDecodeFlowLayout(t *testing.T) {
	// struct flow_key and struct flow_value in bpf/lib/flow.h.
	if flowKeySize != 24 || flowValueSize != 32 {
		t.Fatalf("flow entry is %d+%d bytes, bpf/lib/flow.h says 24+32", flowKeySize, flowValueSize)
	}
}

func TestDecodeFlow(t *testing.T) {
	v4 := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	type entry struct{ key, value []byte }
	raw := func(family, proto uint8, remote string, rport, lport uint16, ifindex uint32, local string) entry {
		k, v := decFlowBytes(family, proto, v4(remote), rport, lport, ifindex, decPeerMAC, v4(local))
		return entry{k, v}
	}
	for _, tc := range []struct {
		name    string
		in      entry
		want    Flow
		wantErr string
	}{
		{"ipv4 udp", raw(syscall.AF_INET, 17, "192.0.2.1", 40000, 5353, 5, "192.0.2.2"),
			Flow{Proto: 17, Remote: netip.MustParseAddrPort("192.0.2.1:40000"), LocalPort: 5353, Local: v4("192.0.2.2"), Interface: "net1", PeerMAC: decPeerMAC}, ""},
		{"ipv6 tcp", raw(syscall.AF_INET6, 6, "2001:db8::1", 51234, 443, 7, "2001:db8:1::5"),
			Flow{Proto: 6, Remote: netip.MustParseAddrPort("[2001:db8::1]:51234"), LocalPort: 443, Local: v4("2001:db8:1::5"), Interface: "net2", PeerMAC: decPeerMAC}, ""},
		{"ipv4-mapped stays ipv6", raw(syscall.AF_INET6, 17, "::ffff:192.0.2.1", 53, 53, 5, "::ffff:192.0.2.2"),
			Flow{Proto: 17, Remote: netip.MustParseAddrPort("[::ffff:192.0.2.1]:53"), LocalPort: 53, Local: v4("::ffff:192.0.2.2"), Interface: "net1", PeerMAC: decPeerMAC}, ""},
		{"port 0 kept", raw(syscall.AF_INET, 17, "192.0.2.1", 0, 0, 5, "192.0.2.2"),
			Flow{Proto: 17, Remote: netip.MustParseAddrPort("192.0.2.1:0"), LocalPort: 0, Local: v4("192.0.2.2"), Interface: "net1", PeerMAC: decPeerMAC}, ""},
		{"unknown ifindex", raw(syscall.AF_INET, 1, "192.0.2.1", 7, 7, 99, "192.0.2.2"),
			Flow{Proto: 1, Remote: netip.MustParseAddrPort("192.0.2.1:7"), LocalPort: 7, Local: v4("192.0.2.2"), PeerMAC: decPeerMAC}, ""},
		{"ifindex 0", raw(syscall.AF_INET, 1, "192.0.2.1", 7, 7, 0, "192.0.2.2"),
			Flow{Proto: 1, Remote: netip.MustParseAddrPort("192.0.2.1:7"), LocalPort: 7, Local: v4("192.0.2.2"), PeerMAC: decPeerMAC}, ""},
		{"unknown family", raw(0, 6, "2001:db8::1", 80, 8080, 5, "2001:db8::2"),
			Flow{Proto: 6, LocalPort: 8080, Interface: "net1", PeerMAC: decPeerMAC}, "unknown address family 0"},
		{"short key", entry{make([]byte, 23), make([]byte, 32)}, Flow{}, "23+32 bytes"},
		{"long value", entry{make([]byte, 24), make([]byte, 40)}, Flow{}, "24+40 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeFlowBytes(tc.in.key, tc.in.value, decIfaces)
			if (err != nil) != (tc.wantErr != "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("flow\n%+v, want\n%+v", got, tc.want)
			}
		})
	}
}

func FuzzDecodeFlow(f *testing.F) {
	a := netip.MustParseAddr
	add := func(key, value []byte) { f.Add(key, value) }
	add(decFlowBytes(syscall.AF_INET, 17, a("192.0.2.1"), 40000, 5353, 5, decPeerMAC, a("192.0.2.2")))
	add(decFlowBytes(syscall.AF_INET, 6, a("198.51.100.7"), 51234, 443, 7, decPeerMAC, a("10.1.0.5")))
	add(decFlowBytes(syscall.AF_INET, 1, a("192.0.2.1"), 0x1234, 0x1234, 5, decPeerMAC, a("192.0.2.2")))
	add(decFlowBytes(syscall.AF_INET6, 6, a("2001:db8::1"), 51234, 443, 7, decPeerMAC, a("2001:db8:1::5")))
	add(decFlowBytes(syscall.AF_INET6, 58, a("fe80::1"), 99, 99, 5, decPeerMAC, a("fe80::2")))
	add(decFlowBytes(syscall.AF_INET6, 17, a("::ffff:192.0.2.1"), 53, 53, 5, decPeerMAC, a("::ffff:192.0.2.2")))
	add(decFlowBytes(7, 17, a("2001:db8::1"), 0, 0, 99, decPeerMAC, a("2001:db8::2")))
	f.Add(make([]byte, 24), make([]byte, 32))
	f.Add([]byte{2}, []byte{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		got, err := decodeFlowBytes(key, value, decIfaces)
		if len(key) != flowKeySize || len(value) != flowValueSize {
			if err == nil {
				t.Fatalf("%d+%d-byte entry decoded", len(key), len(value))
			}
			return
		}
		// Against the C layout, byte by byte.
		family := key[0]
		if got.Proto != key[1] || got.Remote.Port() != binary.BigEndian.Uint16(key[2:]) && got.Remote.IsValid() ||
			got.LocalPort != binary.BigEndian.Uint16(key[4:]) || !bytes.Equal(got.PeerMAC, value[4:10]) {
			t.Fatalf("flow %+v does not hold the entry's fields", got)
		}
		ifindex := binary.NativeEndian.Uint32(value)
		if want := decName(ifindex); got.Interface != want {
			t.Fatalf("ifindex %d named %q, want %q", ifindex, got.Interface, want)
		}
		switch family {
		case syscall.AF_INET:
			r, l := got.Remote.Addr(), got.Local
			if err != nil || !r.Is4() || !l.Is4() || r.As4() != [4]byte(key[8:12]) || l.As4() != [4]byte(value[16:20]) {
				t.Fatalf("IPv4 flow %+v, %v", got, err)
			}
		case syscall.AF_INET6:
			r, l := got.Remote.Addr(), got.Local
			if err != nil || !r.Is6() || !l.Is6() || r.Zone() != "" || r.As16() != [16]byte(key[8:24]) || l.As16() != [16]byte(value[16:32]) {
				t.Fatalf("IPv6 flow %+v, %v", got, err)
			}
		default:
			if err == nil || got.Remote.IsValid() || got.Local.IsValid() {
				t.Fatalf("family %d decoded to %+v, %v; want invalid addresses and an error", family, got, err)
			}
			return
		}
		// decode(encode(x)) == x for the decoded flow.
		k2, v2 := decEncodeFlow(got, decIfaces)
		again, err := decodeFlowBytes(k2, v2, decIfaces)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip:\n%+v\n%+v, %v", got, again, err)
		}
	})
}

// decName is the name decodeFlow must give ifindex.
func decName(ifindex uint32) string {
	for _, itf := range decIfaces {
		if ifindex != 0 && uint32(itf.Index) == ifindex {
			return itf.Name
		}
	}
	return ""
}

var (
	decIfaceSize = binary.Size(steerSteerIface{})
	decGroupSize = binary.Size(steerSteerGroup{})
)

// decConfigBytes is the values of the configuration sections for cfg, as Load writes them.
func decConfigBytes(t testing.TB, ifaces [MaxInterfaces]steerSteerIface, groups [MaxGroups]steerSteerGroup) map[string][]byte {
	t.Helper()
	spec, err := parsedSpec()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]byte{}
	for _, name := range []string{configMap, ifacesMap} {
		ms, ok := spec.Maps[name]
		if !ok {
			t.Fatalf("no %s in the steer object", name)
		}
		values[name] = make([]byte, ms.ValueSize)
	}
	l := decLayout(t)
	if _, err := binary.Encode(values[l.ifaces.section][l.ifaces.offset:], binary.NativeEndian, ifaces); err != nil {
		t.Fatal(err)
	}
	if _, err := binary.Encode(values[l.groups.section][l.groups.offset:], binary.NativeEndian, groups); err != nil {
		t.Fatal(err)
	}
	return values
}

func decLayout(t testing.TB) configLayout {
	t.Helper()
	l, err := embeddedConfigLayout()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// decConfig is a realistic pod: eth0, a pinned dual-stack net1 with gateways, net2, and
// groups of both families.
func decConfig() *Config {
	mac := func(b byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0x42, 0, 0, 0, b} }
	a := netip.MustParseAddr
	return &Config{
		Interfaces: []Interface{
			{Name: "eth0", Index: 2, MTU: 1450, MAC: mac(1), Primary: true, Addr4: a("10.244.1.5"), Addr6: a("fd00:10:244:1::5")},
			{Name: "net1", Index: 5, MTU: 9000, MAC: mac(2), Pin: true, Addr4: a("192.0.2.2"), Addr6: a("2001:db8::2"),
				Gateway4: a("192.0.2.1"), Gateway6: a("fe80::1")},
			{Name: "net2-with-15ch", Index: 7, MTU: 1500, MAC: mac(3), Pin: true, Addr6: a("::ffff:198.51.100.2")},
		},
		Groups: []Group{
			{Prefix: netip.MustParsePrefix("239.1.1.0/24"), Interfaces: []string{"net1"}},
			{Prefix: netip.MustParsePrefix("ff05::/16"), Interfaces: []string{"net1", "net2-with-15ch"}},
			{Prefix: netip.MustParsePrefix("224.0.0.251/32")},
		},
	}
}

func TestDecodeConfig(t *testing.T) {
	l := decLayout(t)
	cfg := decConfig()
	got, err := decodeConfig(decConfigBytes(t, encodeInterfaces(cfg.Interfaces), encodeGroups(cfg)), l)
	if err != nil {
		t.Fatal(err)
	}
	// Group interfaces in slot order, none: nil.
	cfg.Groups[2].Interfaces = nil
	if !reflect.DeepEqual(got.Interfaces, cfg.Interfaces) || !reflect.DeepEqual(got.Groups, cfg.Groups) {
		t.Errorf("decoded\n%+v\n%+v\nwant\n%+v\n%+v", got.Interfaces, got.Groups, cfg.Interfaces, cfg.Groups)
	}
	if !decCanonical(&Config{Interfaces: got.Interfaces, Groups: got.Groups}, &got.slots) {
		t.Error("a configuration Load writes is not canonical: FuzzDecodeConfig would skip its round trip")
	}

	t.Run("unused slot keeps the slots", func(t *testing.T) {
		ifaces := encodeInterfaces(cfg.Interfaces)
		ifaces[1] = steerSteerIface{} // net1 gone: net2 stays in slot 2
		groups := encodeGroups(cfg)
		got, err := decodeConfig(decConfigBytes(t, ifaces, groups), l)
		if err != nil {
			t.Fatal(err)
		}
		if want := [MaxInterfaces]string{"eth0", "", "net2-with-15ch"}; got.slots != want {
			t.Errorf("slots %q, want %q", got.slots, want)
		}
		if len(got.Groups) != 3 || got.Groups[0].Interfaces != nil || !reflect.DeepEqual(got.Groups[1].Interfaces, []string{"net2-with-15ch"}) {
			t.Errorf("groups %+v", got.Groups)
		}
		c := decodeCounter(CounterKey(2, ReasonPinned), uint32(NumReasons), []steerSteerCounter{{Packets: 1, Bytes: 100}, {Packets: 2, Bytes: 200}}, &got.slots)
		if c != (Counter{Interface: "net2-with-15ch", Reason: ReasonPinned, Packets: 3, Bytes: 300}) {
			t.Errorf("counter %+v", c)
		}
		c = decodeCounter(CounterKey(MaxInterfaces, ReasonPassed), uint32(NumReasons), nil, &got.slots)
		if c != (Counter{Reason: ReasonPassed}) {
			t.Errorf("counter of the unknown interfaces' row %+v", c)
		}
	})

	t.Run("bad groups are marked", func(t *testing.T) {
		slots := [MaxInterfaces]string{"eth0", "net1"}
		for _, tc := range []struct {
			name    string
			g       steerSteerGroup
			want    Group
			wantErr string
		}{
			{"unknown family", steerSteerGroup{Family: 3, Prefixlen: 8, Ifaces: 2}, Group{Interfaces: []string{"net1"}}, "unknown address family 3"},
			{"v4 prefix too long", steerSteerGroup{Family: syscall.AF_INET, Prefixlen: 33, Ifaces: 2}, Group{Interfaces: []string{"net1"}}, "longer than 32 bits"},
			{"v6 prefix too long", steerSteerGroup{Family: syscall.AF_INET6, Prefixlen: 255}, Group{}, "longer than 128 bits"},
			{"unused slot", steerSteerGroup{Family: syscall.AF_INET, Prefixlen: 0, Ifaces: 0xff}, Group{Prefix: netip.MustParsePrefix("0.0.0.0/0"), Interfaces: []string{"eth0", "net1"}}, "slot 2 is not configured"},
		} {
			got, err := decodeGroup(tc.g, &slots)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s: group %+v, want %+v", tc.name, got, tc.want)
			}
		}
	})

	t.Run("short value", func(t *testing.T) {
		values := decConfigBytes(t, encodeInterfaces(cfg.Interfaces), encodeGroups(cfg))
		for _, tc := range []struct {
			at placement
			n  int
		}{
			{l.ifaces, 0}, {l.ifaces, int(l.ifaces.offset) + MaxInterfaces*decIfaceSize - 1},
			{l.groups, 0}, {l.groups, int(l.groups.offset) + 1}, {l.groups, int(l.groups.offset) + MaxGroups*decGroupSize - 1},
		} {
			short := maps.Clone(values)
			short[tc.at.section] = short[tc.at.section][:tc.n]
			if _, err := decodeConfig(short, l); err == nil {
				t.Errorf("%d of %d bytes of %s decoded", tc.n, len(values[tc.at.section]), tc.at.section)
			}
		}
		past := l
		past.ifaces.offset = ^uint32(0)
		if _, err := decodeConfig(values, past); err == nil {
			t.Error("offset past the end decoded")
		}
	})
}

// FuzzDecodeConfig decodes the values of the two configuration sections, .rodata and
// .data.ifaces.
func FuzzDecodeConfig(f *testing.F) {
	l := decLayout(f)
	if l.ifaces.section != ifacesMap || l.groups.section != configMap {
		f.Fatalf("tables in %s and %s, the corpus has them in %s and %s", l.ifaces.section, l.groups.section, ifacesMap, configMap)
	}
	add := func(v map[string][]byte) { f.Add(v[configMap], v[ifacesMap]) }
	cfg := decConfig()
	add(decConfigBytes(f, encodeInterfaces(cfg.Interfaces), encodeGroups(cfg)))
	one := &Config{Interfaces: cfg.Interfaces[1:2]}
	add(decConfigBytes(f, encodeInterfaces(one.Interfaces), encodeGroups(one)))
	add(decConfigBytes(f, [MaxInterfaces]steerSteerIface{}, [MaxGroups]steerSteerGroup{}))
	f.Add([]byte{}, []byte{})
	tableEnd := int(l.ifaces.offset) + MaxInterfaces*decIfaceSize
	groupsEnd := int(l.groups.offset) + MaxGroups*decGroupSize
	f.Fuzz(func(t *testing.T, constants, table []byte) {
		got, err := decodeConfig(map[string][]byte{configMap: constants, ifacesMap: table}, l)
		if (err != nil) != (len(table) < tableEnd || len(constants) < groupsEnd) {
			t.Fatalf("%d-byte interface table (ends at %d), %d-byte constants (groups end at %d): error %v", len(table), tableEnd, len(constants), groupsEnd, err)
		}
		if err != nil {
			return
		}
		names := map[string]bool{}
		used := 0
		for slot, name := range got.slots {
			if name != "" {
				names[name] = true
			}
			if binary.NativeEndian.Uint32(table[int(l.ifaces.offset)+slot*decIfaceSize:]) != 0 {
				used++
			}
		}
		if used != len(got.Interfaces) {
			t.Fatalf("%d used slots, %d interfaces", used, len(got.Interfaces))
		}
		for _, itf := range got.Interfaces {
			if itf.Index == 0 || len(itf.Name) > 16 || strings.IndexByte(itf.Name, 0) >= 0 || len(itf.MAC) != 6 ||
				itf.Addr4.IsValid() && !itf.Addr4.Is4() || itf.Gateway4.IsValid() && !itf.Gateway4.Is4() ||
				itf.Addr6.IsValid() && !itf.Addr6.Is6() || itf.Gateway6.IsValid() && !itf.Gateway6.Is6() {
				t.Fatalf("bad interface %+v", itf)
			}
		}
		for _, g := range got.Groups {
			if g.Prefix.IsValid() && g.Prefix.Addr().Zone() != "" {
				t.Fatalf("group %s has a zone", g.Prefix)
			}
			for _, name := range g.Interfaces {
				if name == "" || !names[name] {
					t.Fatalf("group %s takes %q, not a slot's interface", g.Prefix, name)
				}
			}
		}
		if len(got.Groups) > MaxGroups {
			t.Fatalf("%d groups", len(got.Groups))
		}

		// A configuration Load could have written decodes to what it was made from.
		c := Config{Interfaces: got.Interfaces, Groups: got.Groups}
		if !decCanonical(&c, &got.slots) {
			return
		}
		again, err := decodeConfig(decConfigBytes(t, encodeInterfaces(c.Interfaces), encodeGroups(&c)), l)
		if err != nil || !reflect.DeepEqual(again.Interfaces, got.Interfaces) || !reflect.DeepEqual(again.Groups, got.Groups) || again.slots != got.slots {
			t.Fatalf("round trip:\n%+v\n%+v\n%+v\n%+v\n%v", got.Interfaces, got.Groups, again.Interfaces, again.Groups, err)
		}
	})
}

// decCanonical tells whether c is what encodeInterfaces and encodeGroups make from a valid
// configuration: slots used from the first on, names set, unique and short enough, groups
// valid and masked.
func decCanonical(c *Config, slots *[MaxInterfaces]string) bool {
	if c.validate() != nil {
		return false
	}
	seen := map[string]bool{}
	for i, itf := range c.Interfaces {
		if itf.Name == "" || len(itf.Name) > 15 || seen[itf.Name] || slots[i] != itf.Name {
			return false
		}
		seen[itf.Name] = true
	}
	for _, g := range c.Groups {
		if g.Prefix != g.Prefix.Masked() {
			return false
		}
	}
	return true
}
