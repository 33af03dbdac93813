package datapath

import "testing"

// needsXDP decides from the kinds the caller read, without entering the namespace (here one that
// does not exist, where a lookup would answer "load it": attaching fails there anyway).
func TestNeedsXDPFromKinds(t *testing.T) {
	const gone = "/nonexistent/netns"
	for _, c := range []struct {
		name string
		itfs []Interface
		mode IngressMode
		want bool
	}{
		{"veth secondary", []Interface{{Kind: "veth", Primary: true}, {Kind: "macvlan", Pin: true}}, IngressAuto, false},
		{"VF secondary", []Interface{{Kind: "veth", Primary: true}, {Kind: "device", Pin: true}}, IngressAuto, true},
		{"a VF that learns nothing", []Interface{{Kind: "device", Primary: true}, {Kind: "vxlan", Pin: true}}, IngressAuto, false},
		{"kind unknown: looked up", []Interface{{Kind: "veth", Primary: true}, {Pin: true}}, IngressAuto, true},
		{"TC asked", []Interface{{Kind: "device", Pin: true}}, IngressTC, false},
		{"XDP asked", []Interface{{Kind: "veth", Pin: true}}, IngressXDP, true},
	} {
		if got := needsXDP(gone, c.itfs, c.mode); got != c.want {
			t.Errorf("%s: needsXDP = %t, want %t", c.name, got, c.want)
		}
	}
}
