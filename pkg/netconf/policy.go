package netconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
)

// MaxMulticastGroups bounds the "multicast" list of one network; the
// datapath sizes its group map from it.
const MaxMulticastGroups = 64

// PolicyKey is the key of the Steer policy object, at the top level of a
// NetworkAttachmentDefinition's CNI config and in a selection element.
const PolicyKey = "steer"

var (
	mcast4 = netip.MustParsePrefix("224.0.0.0/4")
	mcast6 = netip.MustParsePrefix("ff00::/8")
)

// Policy is the resolved steering policy of one attachment.
type Policy struct {
	// Steering pins the attachment's traffic to its interface: replies to
	// flows that arrived on it leave through it, and traffic sourced from its
	// address leaves through it too.
	Steering bool
	// Multicast lists the groups whose traffic (sent by the pod, and the
	// IGMP/MLD joins) leaves through this interface. Each prefix is masked
	// and unique. nil means the key was not given, so Steer's default may
	// apply (see package steering); an empty list means no groups.
	Multicast []netip.Prefix
	// Gateways are the next hops, at most one per address family, for
	// traffic sourced from the interface's address when no learned flow
	// matches, and for Steer's fallback route. A family without one uses the
	// IPAM gateway of the attachment's result.
	Gateways []netip.Addr
	// FallbackRoute says whether this interface may carry the pod's default
	// route of an address family the primary network does not route: nil
	// lets Steer choose (the first steered secondary with the family), true
	// prefers it, false never uses it.
	FallbackRoute *bool
}

// DefaultPolicy is what a network gets with no "steer" key: steering on, no
// multicast groups, the IPAM gateway.
func DefaultPolicy() Policy { return Policy{Steering: true} }

// PolicySpec is the JSON form of a policy. Every field is optional; a set
// field of the selection element overrides the network's.
type PolicySpec struct {
	// Steering: see Policy.Steering. Default true.
	Steering *bool `json:"steering,omitempty"`
	// Multicast: group addresses or prefixes. A set list replaces the
	// network's list; an explicit [] clears it. No omitempty: [] and null
	// (unset) must survive a round trip through JSON.
	Multicast []string `json:"multicast"`
	// Gateway: an IP address, or a list of one per family; "" or []
	// restores the IPAM gateways.
	// No omitempty: [] (the IPAM gateways) and null (unset) differ.
	Gateway GatewaySpec `json:"gateway"`
	// FallbackRoute: see Policy.FallbackRoute. Default: unset.
	FallbackRoute *bool `json:"fallbackRoute,omitempty"`
}

// UnmarshalJSON refuses unknown keys: a misspelt "mutlicast" must fail the
// pod instead of silently sending its groups out of the wrong interface.
func (s *PolicySpec) UnmarshalJSON(data []byte) error {
	type plain PolicySpec
	var p plain
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("%s: %s", PolicyKey, jsonErrText(err))
	}
	if dec.More() {
		return fmt.Errorf("%s: trailing data", PolicyKey)
	}
	*s = PolicySpec(p)
	return nil
}

// ParsePolicySpec decodes and validates one policy object, e.g. the value of
// a NetworkAttachmentDefinition annotation that carries it. "null" and blank
// input give a nil spec.
func ParsePolicySpec(data []byte) (*PolicySpec, error) {
	if s := bytes.TrimSpace(data); len(s) == 0 || string(s) == "null" {
		return nil, nil
	}
	if !isJSONObject(data) {
		return nil, decodeError("%s: must be a JSON object", PolicyKey)
	}
	var s PolicySpec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, decodeError("%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if err := s.validate(); err != nil {
		return nil, invalidError("%s.%v", PolicyKey, err)
	}
	return &s, nil
}

// ResolvePolicy computes the policy of one attachment: the defaults, then the
// "steer" object at the top level of the network's CNI config nadConf, then
// the selection element's "steer" object (elem may be nil). Errors are
// *types.Error naming the network and the key: code 6 when nadConf or the
// policy does not decode, 7 when a value is invalid.
func ResolvePolicy(nadConf []byte, elem *NetworkSelectionElement) (Policy, error) {
	where := "network config"
	if elem != nil {
		where = fmt.Sprintf("network %q", elem.key())
	}
	ms, err := objectMembers(nadConf)
	if err != nil {
		return Policy{}, decodeError("%s: %s", where, jsonErrText(err))
	}
	pol := DefaultPolicy()
	if sp, ok := lastMember(ms, PolicyKey); ok {
		spec, err := ParsePolicySpec(nadConf[sp.start:sp.end])
		if err != nil {
			return Policy{}, prefixError(where+": config", err)
		}
		if err := spec.apply(&pol); err != nil {
			return Policy{}, invalidError("%s: config %s.%v", where, PolicyKey, err)
		}
	}
	if elem != nil && elem.Steer != nil {
		if err := elem.Steer.apply(&pol); err != nil {
			return Policy{}, invalidError("%s: selection element %s.%v", where, PolicyKey, err)
		}
	}
	return pol, nil
}

// validate checks the spec on its own; errors start with the field name.
func (s *PolicySpec) validate() error {
	p := DefaultPolicy()
	return s.apply(&p)
}

// apply overlays the set fields of s onto p.
func (s *PolicySpec) apply(p *Policy) error {
	if s == nil {
		return nil
	}
	if s.Steering != nil {
		p.Steering = *s.Steering
	}
	if s.Multicast != nil {
		groups, err := parseGroups(s.Multicast)
		if err != nil {
			return err
		}
		p.Multicast = groups
	}
	if s.Gateway != nil {
		gws, err := parseGateways(s.Gateway)
		if err != nil {
			return err
		}
		p.Gateways = gws
	}
	if s.FallbackRoute != nil {
		v := *s.FallbackRoute
		p.FallbackRoute = &v
	}
	return nil
}

func parseGroups(list []string) ([]netip.Prefix, error) {
	if len(list) > MaxMulticastGroups {
		return nil, fmt.Errorf("multicast: %d groups, at most %d are allowed", len(list), MaxMulticastGroups)
	}
	out := make([]netip.Prefix, 0, len(list))
	seen := make(map[netip.Prefix]bool, len(list))
	for i, s := range list {
		p, err := parseGroup(s)
		if err != nil {
			return nil, fmt.Errorf("multicast[%d]: %w", i, err)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// parseGroup accepts "239.1.1.1", "239.1.1.0/24", "ff0e::1:1" or
// "ff0e::/16". Host bits must be zero, so a typo in the length is caught.
func parseGroup(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("%q is not an address or prefix", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, fmt.Errorf("%q is not an address or prefix", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		return p, fmt.Errorf("%q: write IPv4 groups as IPv4, not IPv4-mapped IPv6", s)
	case a.Is4() && (p.Bits() < mcast4.Bits() || !mcast4.Contains(a)):
		return p, fmt.Errorf("%q is not inside the IPv4 multicast range %s", s, mcast4)
	case a.Is6() && (p.Bits() < mcast6.Bits() || !mcast6.Contains(a)):
		return p, fmt.Errorf("%q is not inside the IPv6 multicast range %s", s, mcast6)
	case p != p.Masked():
		return p, fmt.Errorf("%q has host bits set; did you mean %s?", s, p.Masked())
	}
	return p, nil
}

// GatewaySpec is the "gateway" policy key: one address as a string, or a
// list of up to one per family (a network with static IPv4 and IPv6
// addresses has two gateways).
type GatewaySpec []string

// UnmarshalJSON takes a string or a list of strings; null leaves it unset.
func (g *GatewaySpec) UnmarshalJSON(data []byte) error {
	if string(bytes.TrimSpace(data)) == "null" {
		*g = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*g = GatewaySpec{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("gateway: want an address or a list of addresses")
	}
	if list == nil {
		list = []string{}
	}
	*g = list
	return nil
}

// parseGateways checks a gateway list: at most one address per family, ""
// entries ignored. An empty result means the IPAM gateways.
func parseGateways(list []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range list {
		gw, err := parseGateway(s)
		if err != nil {
			return nil, err
		}
		if !gw.IsValid() {
			continue
		}
		for _, o := range out {
			if o.Is4() == gw.Is4() {
				return nil, fmt.Errorf("gateway: %s and %s are of the same family; give at most one per family", o, gw)
			}
		}
		out = append(out, gw)
	}
	return out, nil
}

// parseGateway accepts a unicast address usable as a next hop; "" means the
// IPAM gateway.
func parseGateway(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return a, fmt.Errorf("gateway: %q is not an IP address", s)
	case a.Is4In6():
		return a, fmt.Errorf("gateway: write %q as IPv4, not IPv4-mapped IPv6", s)
	case a.Zone() != "":
		return a, fmt.Errorf("gateway: %q: zones are not allowed, the interface is implied", s)
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return a, fmt.Errorf("gateway: %q is not a unicast next hop", s)
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return a, fmt.Errorf("gateway: %q is not a unicast next hop", s)
	}
	return a, nil
}
