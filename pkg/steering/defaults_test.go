package steering

import (
	"net/netip"
	"testing"

	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
)

func itf(name string, index int, primary, pin bool, v4, v6 string) datapath.Interface {
	i := datapath.Interface{Name: name, Index: index, Primary: primary, Pin: pin}
	if v4 != "" {
		i.Addr4, i.Gateway4 = netip.MustParseAddr(v4), netip.MustParseAddr(v4).Prev()
	}
	if v6 != "" {
		i.Addr6 = netip.MustParseAddr(v6)
	}
	return i
}

func att(name string, pol netconf.Policy) Attachment { return Attachment{IfName: name, Policy: pol} }

func TestChooseFallbacks(t *testing.T) {
	yes, no := true, false
	prefer := netconf.DefaultPolicy()
	prefer.FallbackRoute = &yes
	refuse := netconf.DefaultPolicy()
	refuse.FallbackRoute = &no
	def := netconf.DefaultPolicy()
	itfs := []datapath.Interface{
		itf("eth0", 2, true, false, "198.18.1.5", ""),
		itf("net1", 3, false, true, "192.0.2.10", "2001:db8:2::10"),
		itf("net2", 4, false, true, "198.51.100.10", "2001:db8:51::10"),
		itf("net3", 5, false, false, "203.0.113.10", "2001:db8:3::10"), // opted out of steering
	}
	for _, c := range []struct {
		name     string
		pols     []netconf.Policy
		defaults map[int][]int
		want     map[int]string // family -> interface
	}{
		{"ipv4-only primary: first secondary", []netconf.Policy{def, def, def, def}, map[int][]int{4: {2}}, map[int]string{6: "net1"}},
		{"dual-stack primary: nothing", []netconf.Policy{def, def, def, def}, map[int][]int{4: {2}, 6: {2}}, nil},
		{"no primary route at all", []netconf.Policy{def, def, def, def}, map[int][]int{}, map[int]string{4: "net1", 6: "net1"}},
		{"preferred second", []netconf.Policy{def, def, prefer, def}, map[int][]int{4: {2}}, map[int]string{6: "net2"}},
		{"first refuses", []netconf.Policy{def, refuse, def, def}, map[int][]int{4: {2}}, map[int]string{6: "net2"}},
		{"all refuse", []netconf.Policy{def, refuse, refuse, def}, map[int][]int{4: {2}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var atts []Attachment
			for i, p := range c.pols {
				atts = append(atts, att(itfs[i].Name, p))
			}
			got := map[int]string{}
			for _, f := range chooseFallbacks(atts, itfs, c.defaults) {
				got[f.family] = f.ifname
				if f.family == 4 && !f.gateway.IsValid() {
					t.Errorf("IPv4 fallback through %s has no gateway", f.ifname)
				}
				if f.family == 6 && f.gateway.IsValid() {
					t.Errorf("IPv6 fallback through %s has gateway %s, want on-link", f.ifname, f.gateway)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("fallbacks %v, want %v", got, c.want)
			}
			for fam, name := range c.want {
				if got[fam] != name {
					t.Errorf("IPv%d fallback through %q, want %q", fam, got[fam], name)
				}
			}
		})
	}
}

func TestDefaultGroupRoutes(t *testing.T) {
	itfs := []datapath.Interface{
		itf("eth0", 2, true, false, "198.18.1.5", "2001:db8:18:1::5"),
		itf("net1", 3, false, false, "192.0.2.10", "2001:db8:2::10"), // not steered
		itf("net2", 4, false, true, "198.51.100.10", ""),
		itf("net3", 5, false, true, "203.0.113.10", "2001:db8:3::10"),
	}
	got := map[netip.Prefix]string{}
	for _, g := range defaultGroupRoutes(itfs) {
		got[g.prefix] = g.ifname
	}
	if got[allGroups4] != "net2" || got[allGroups6] != "net3" || len(got) != 2 {
		t.Errorf("default group routes %v, want 224.0.0.0/4 on net2 and ff00::/8 on net3", got)
	}
	if multicastKeyGiven([]Attachment{att("net1", netconf.DefaultPolicy())}) {
		t.Error("no key given, but the default is off")
	}
	empty := netconf.DefaultPolicy()
	empty.Multicast = []netip.Prefix{}
	if !multicastKeyGiven([]Attachment{att("net1", netconf.DefaultPolicy()), att("net2", empty)}) {
		t.Error(`"multicast": [] did not turn the default off`)
	}
}

func TestPinPrimary(t *testing.T) {
	itfs := []datapath.Interface{itf("eth0", 2, true, false, "198.18.1.5", ""), itf("net1", 3, false, true, "192.0.2.10", "")}
	if pinPrimary(itfs, map[int][]int{4: {2}}) {
		t.Error("primary pinned while the default route leaves by it")
	}
	if !pinPrimary(itfs, map[int][]int{4: {3}}) {
		t.Error("primary not pinned with the default route on net1")
	}
	if pinPrimary(itfs, map[int][]int{}) {
		t.Error("primary pinned with no default route")
	}
}
