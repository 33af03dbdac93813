package netconf

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestResolvePolicy(t *testing.T) {
	pfx := netip.MustParsePrefix
	f, tr := false, true
	empty, gw := "", "10.1.0.254"
	for _, tc := range []struct {
		name string
		conf string
		elem *NetworkSelectionElement
		want Policy
	}{
		{"defaults", `{"type":"macvlan"}`, nil, Policy{Steering: true}},
		{"null steer", `{"type":"macvlan","steer":null}`, nil, Policy{Steering: true}},
		{"network policy", `{"type":"macvlan","steer":{"steering":false,"multicast":["239.1.1.0/24","239.1.1.0/24","ff0e::1:1","224.0.0.251"],"gateway":"10.0.0.1"}}`, nil,
			Policy{Steering: false, Multicast: []netip.Prefix{pfx("239.1.1.0/24"), pfx("ff0e::1:1/128"), pfx("224.0.0.251/32")}, Gateways: []netip.Addr{netip.MustParseAddr("10.0.0.1")}}},
		{"list config", `{"plugins":[{"type":"a"}],"steer":{"multicast":["ff02::/16"]}}`, nil,
			Policy{Steering: true, Multicast: []netip.Prefix{pfx("ff02::/16")}}},
		{"element overrides each set field", `{"type":"a","steer":{"steering":false,"multicast":["239.0.0.0/8"],"gateway":"10.0.0.1"}}`,
			&NetworkSelectionElement{Name: "n", Namespace: "ns", Steer: &PolicySpec{Steering: &tr, Gateway: GatewaySpec{gw}}},
			Policy{Steering: true, Multicast: []netip.Prefix{pfx("239.0.0.0/8")}, Gateways: []netip.Addr{netip.MustParseAddr("10.1.0.254")}}},
		{"element clears groups and gateway", `{"type":"a","steer":{"multicast":["239.0.0.0/8"],"gateway":"10.0.0.1"}}`,
			&NetworkSelectionElement{Name: "n", Namespace: "ns", Steer: &PolicySpec{Multicast: []string{}, Gateway: GatewaySpec{empty}}},
			Policy{Steering: true, Multicast: []netip.Prefix{}}},
		{"element only", `{"type":"a"}`,
			&NetworkSelectionElement{Name: "n", Namespace: "ns", Steer: &PolicySpec{Steering: &f}},
			Policy{Steering: false}},
		{"element without steer", `{"type":"a","steer":{"steering":false}}`,
			&NetworkSelectionElement{Name: "n", Namespace: "ns"}, Policy{Steering: false}},
		{"link-local v6 gateway", `{"type":"a","steer":{"gateway":"fe80::1"}}`, nil,
			Policy{Steering: true, Gateways: []netip.Addr{netip.MustParseAddr("fe80::1")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolvePolicy([]byte(tc.conf), tc.elem)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestResolvePolicyErrors(t *testing.T) {
	bad := "224.0.0.1"
	many := make([]string, MaxMulticastGroups+1)
	for i := range many {
		many[i] = "239.0.0.1"
	}
	for _, tc := range []struct {
		name string
		conf string
		elem *NetworkSelectionElement
		code uint
		want []string
	}{
		{"conf not json", `{"type":`, nil, codeDecode, []string{"network config"}},
		{"conf not object", `[]`, nil, codeDecode, []string{"network config"}},
		{"steer not object", `{"type":"a","steer":true}`, nil, codeDecode, []string{"steer", "JSON object"}},
		{"unknown key", `{"type":"a","steer":{"mutlicast":[]}}`, nil, codeDecode, []string{"steer", `"mutlicast"`}},
		{"steering type", `{"type":"a","steer":{"steering":1}}`, nil, codeDecode, []string{"steer", `"steering"`}},
		{"multicast type", `{"type":"a","steer":{"multicast":"239.0.0.1"}}`, nil, codeDecode, []string{"steer", `"multicast"`}},
		{"unicast v4 group", `{"type":"a","steer":{"multicast":["239.0.0.1","10.0.0.1"]}}`, nil, codeInvalid, []string{"steer.multicast[1]", "10.0.0.1", "224.0.0.0/4"}},
		{"unicast v6 group", `{"type":"a","steer":{"multicast":["fd00::1"]}}`, nil, codeInvalid, []string{"steer.multicast[0]", "ff00::/8"}},
		{"prefix wider than range", `{"type":"a","steer":{"multicast":["224.0.0.0/3"]}}`, nil, codeInvalid, []string{"steer.multicast[0]"}},
		{"v6 prefix wider than range", `{"type":"a","steer":{"multicast":["ff00::/7"]}}`, nil, codeInvalid, []string{"steer.multicast[0]"}},
		{"host bits", `{"type":"a","steer":{"multicast":["239.1.1.5/24"]}}`, nil, codeInvalid, []string{"steer.multicast[0]", "239.1.1.0/24"}},
		{"mapped", `{"type":"a","steer":{"multicast":["::ffff:239.1.1.1"]}}`, nil, codeInvalid, []string{"steer.multicast[0]", "IPv4-mapped"}},
		{"zone", `{"type":"a","steer":{"multicast":["ff02::1%eth0"]}}`, nil, codeInvalid, []string{"steer.multicast[0]"}},
		{"garbage group", `{"type":"a","steer":{"multicast":["239.1.1/24"]}}`, nil, codeInvalid, []string{"steer.multicast[0]"}},
		{"too many", `{"type":"a","steer":{"multicast":["` + joinQ(many) + `"]}}`, nil, codeInvalid, []string{"steer.multicast", "at most"}},
		{"gateway garbage", `{"type":"a","steer":{"gateway":"router"}}`, nil, codeInvalid, []string{"steer.gateway"}},
		{"gateway multicast", `{"type":"a","steer":{"gateway":"224.0.0.1"}}`, nil, codeInvalid, []string{"steer.gateway"}},
		{"gateway unspecified", `{"type":"a","steer":{"gateway":"::"}}`, nil, codeInvalid, []string{"steer.gateway"}},
		{"gateway broadcast", `{"type":"a","steer":{"gateway":"255.255.255.255"}}`, nil, codeInvalid, []string{"steer.gateway"}},
		{"gateway zone", `{"type":"a","steer":{"gateway":"fe80::1%eth0"}}`, nil, codeInvalid, []string{"steer.gateway", "zone"}},
		{"gateway prefix", `{"type":"a","steer":{"gateway":"10.0.0.1/24"}}`, nil, codeInvalid, []string{"steer.gateway"}},
		{"element override invalid", `{"type":"a"}`, &NetworkSelectionElement{Name: "n", Namespace: "ns", Steer: &PolicySpec{Gateway: GatewaySpec{bad}}},
			codeInvalid, []string{`"ns/n"`, "selection element", "steer.gateway"}},
		{"network named in conf errors", `{"type":"a","steer":{"gateway":"x"}}`, &NetworkSelectionElement{Name: "n", Namespace: "ns"},
			codeInvalid, []string{`"ns/n"`, "config", "steer.gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolvePolicy([]byte(tc.conf), tc.elem)
			if err == nil {
				t.Fatalf("got %+v, want error", got)
			}
			checkErr(t, err, tc.code, tc.want...)
		})
	}
}

func joinQ(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += `","`
		}
		out += v
	}
	return out
}

func TestParsePolicySpec(t *testing.T) {
	for _, in := range []string{"", " ", "null"} {
		if s, err := ParsePolicySpec([]byte(in)); s != nil || err != nil {
			t.Errorf("%q: %v, %v", in, s, err)
		}
	}
	s, err := ParsePolicySpec([]byte(`{"steering":false}`))
	if err != nil || s.Steering == nil || *s.Steering {
		t.Errorf("got %+v, %v", s, err)
	}
	_, err = ParsePolicySpec([]byte(`{"multicast":["1.2.3.4"]}`))
	checkErr(t, err, codeInvalid, "steer.multicast[0]")
	_, err = ParsePolicySpec([]byte(`"x"`))
	checkErr(t, err, codeDecode, "JSON object")
}
