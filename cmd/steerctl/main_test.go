package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/service"
)

// attached makes a pod namespace with a steered net1 that has learned one UDP flow.
func attached(t *testing.T) (bpffs.Layout, string) {
	pod, peer := nstest.NewNS(t), nstest.NewNS(t)
	net1, _ := nstest.Veth(t, pod, "net1", peer, "lan0")
	nstest.AddAddr(t, pod, "net1", "192.0.2.2/24")
	nstest.AddAddr(t, peer, "lan0", "192.0.2.1/24")
	layout := nstest.BPFRoot(t)
	const cid = "steerctl-test"
	cfg := datapath.Config{
		Interfaces: []datapath.Interface{{Name: "net1", Index: net1.Attrs().Index, MTU: 1500, MAC: net1.Attrs().HardwareAddr,
			Pin: true, Addr4: netip.MustParseAddr("192.0.2.2")}},
		Groups: []datapath.Group{{Prefix: netip.MustParsePrefix("239.1.1.0/24"), Interfaces: []string{"net1"}}},
	}
	opts := datapath.Options{Layout: layout, Ingress: datapath.IngressTC}
	if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid, opts) })
	err := peer.Do(func(ns.NetNS) error {
		c, err := net.Dial("udp4", "192.0.2.2:5353")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hi"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	entries := []service.Entry{{
		Frontend: service.Frontend{Addr: netip.MustParseAddrPort("198.18.96.10:80"), Proto: service.TCP},
		Service:  "default/web-dmz", IfName: "net1", Backends: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.3:8080")},
	}}
	if err := (datapath.Services{Layout: layout}).Program(cid, entries); err != nil {
		t.Fatal(err)
	}
	return layout, cid
}

func TestCommandsFromPins(t *testing.T) {
	layout, cid := attached(t)
	run := func(json bool, args ...string) string {
		var out bytes.Buffer
		c := cli{layout: layout, out: &out, json: json, confDir: t.TempDir()}
		if err := c.run(args[0], args[1:]); err != nil {
			t.Fatalf("steerctl %v: %v", args, err)
		}
		return out.String()
	}
	obj, err := datapath.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"attachments"}, []string{short(cid), "net1", "secondary", "192.0.2.2", fmt.Sprintf("layout=%d object=", obj.Version.Layout)}},
		{[]string{"flows"}, []string{"udp", "192.0.2.1:", "192.0.2.2:5353", "via net1"}},
		{[]string{"stats", cid}, []string{"net1", "learned", "1 pkts"}},
		{[]string{"groups"}, []string{"239.1.1.0/24", "net1"}},
		{[]string{"services"}, []string{"default/web-dmz", "tcp 198.18.96.10:80", "via net1", "-> 192.0.2.3:8080", "0 conns"}},
	} {
		out := run(false, c.args...)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("steerctl %v: no %q in\n%s", c.args, w, out)
			}
		}
	}
	var states map[string]*datapath.State
	if err := json.Unmarshal([]byte(run(true, "flows")), &states); err != nil || len(states[cid].Flows) != 1 {
		t.Errorf("steerctl -o json flows: %v %+v", err, states)
	}
}

// TestBpftoolShowsFieldNames runs the README's bpftool commands: BTF makes them print names.
func TestBpftoolShowsFieldNames(t *testing.T) {
	layout, cid := attached(t)
	dir, _ := layout.Dir(cid)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"prog", "show", "name", "steer_egress"}, "steer_egress"},
		{[]string{"map", "dump", "pinned", filepath.Join(dir, bpffs.FlowsPin)}, `"peer_mac"`},
		{[]string{"map", "dump", "pinned", filepath.Join(dir, bpffs.CountersPin)}, `"packets"`},
		{[]string{"map", "dump", "pinned", filepath.Join(dir, bpffs.IfacesPin)}, `"steer_ifaces"`},
		{[]string{"map", "dump", "pinned", filepath.Join(dir, bpffs.SvcFrontendsPin)}, `"service"`},
		{[]string{"map", "dump", "pinned", filepath.Join(dir, bpffs.SvcCountersPin)}, `"no_backend"`},
	} {
		out, err := exec.Command("bpftool", c.args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("bpftool %v: %v, want %q in\n%.600s", c.args, err, c.want, out)
		}
	}
}

func TestDoctor(t *testing.T) {
	layout, _ := attached(t)
	var out bytes.Buffer
	c := cli{layout: layout, out: &out, confDir: t.TempDir()}
	err := c.doctor(c.confDir)
	// No CNI config in the empty conf dir: doctor must say so and fail.
	if err == nil || !strings.Contains(out.String(), "cni-config") || !strings.Contains(out.String(), "FAIL") {
		t.Errorf("doctor without a config: %v\n%s", err, out.String())
	}
	for _, w := range []string{"kernel", "btf", "bpffs", "pins"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("doctor output lacks %s:\n%s", w, out.String())
		}
	}
}
