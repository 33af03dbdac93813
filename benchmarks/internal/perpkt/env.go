package perpkt

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/pkg/datapath"
)

// The pod of the measurements: slot 0 is eth0 (the cluster network), slots 1 and 2 are
// steered secondaries, as net1 on the DMZ and net2 on the management LAN of the scenarios.
const (
	slotEth0 = iota
	slotNet1
	slotNet2
	slots
)

var (
	podMAC = [slots]net.HardwareAddr{{0x02, 0x5e, 0, 0, 0, 0x10}, {0x02, 0x5e, 0, 0, 0, 0x11}, {0x02, 0x5e, 0, 0, 0, 0x12}}
	hopMAC = [slots]net.HardwareAddr{{0x02, 0xee, 0, 0, 0, 0x10}, {0x02, 0xee, 0, 0, 0, 0x11}, {0x02, 0xee, 0, 0, 0, 0x12}}
	addr4  = [slots]netip.Addr{netip.MustParseAddr("198.18.1.5"), netip.MustParseAddr("192.0.2.24"), netip.MustParseAddr("198.51.100.24")}
	addr6  = [slots]netip.Addr{netip.MustParseAddr("2001:db8:18:1::5"), netip.MustParseAddr("2001:db8:2::24"), netip.MustParseAddr("2001:db8:51::24")}
	gw4    = [slots]netip.Addr{netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")}
	gw6    = [slots]netip.Addr{netip.MustParseAddr("2001:db8:18:1::1"), netip.MustParseAddr("2001:db8:2::1"), netip.MustParseAddr("2001:db8:51::1")}

	// groupFan is taken by both secondaries (fan-out); groupOne by net1 only.
	groupFan = netip.MustParsePrefix("239.1.0.0/16")
	groupOne = netip.MustParsePrefix("239.2.0.0/16")
)

// env is a pod namespace with veths p0..p2 (peers in a second namespace, so multicast copies
// have somewhere to go) and the configuration that names them.
type env struct {
	pod, peer *podns.NS
	index     [slots]int
}

func newEnv(prefix string) (e *env, err error) {
	e = &env{}
	defer func() {
		if err != nil {
			err = errors.Join(err, e.Close())
		}
	}()
	if e.pod, err = podns.New(prefix + "-pkt-pod"); err != nil {
		return e, err
	}
	if e.peer, err = podns.New(prefix + "-pkt-peer"); err != nil {
		return e, err
	}
	err = e.pod.Do(func(ns.NetNS) error {
		for i := range slots {
			veth := &netlink.Veth{
				LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("p%d", i), HardwareAddr: podMAC[i]},
				PeerName:  fmt.Sprintf("h%d", i), PeerHardwareAddr: hopMAC[i],
				PeerNamespace: netlink.NsFd(int(e.peer.Fd())),
			}
			if err := netlink.LinkAdd(veth); err != nil {
				return fmt.Errorf("add veth p%d: %w", i, err)
			}
			l, err := netlink.LinkByName(veth.Name)
			if err != nil {
				return err
			}
			e.index[i] = l.Attrs().Index
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	return e, e.peer.Do(func(ns.NetNS) error {
		for i := range slots {
			l, err := netlink.LinkByName(fmt.Sprintf("h%d", i))
			if err != nil {
				return err
			}
			if err := netlink.LinkSetUp(l); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close removes both namespaces and with them the links.
func (e *env) Close() error {
	var errs []error
	for _, n := range []*podns.NS{e.pod, e.peer} {
		if n != nil {
			errs = append(errs, n.Remove())
		}
	}
	return errors.Join(errs...)
}

// config is the pod's dataplane configuration with a flow table of entries.
func (e *env) config(entries uint32) datapath.Config {
	cfg := datapath.Config{FlowEntries: entries, Groups: []datapath.Group{
		{Prefix: groupFan, Interfaces: []string{"p1", "p2"}},
		{Prefix: groupOne, Interfaces: []string{"p1"}},
	}}
	for i := range slots {
		cfg.Interfaces = append(cfg.Interfaces, datapath.Interface{
			Name: fmt.Sprintf("p%d", i), Index: e.index[i], MTU: 1500, MAC: podMAC[i],
			Primary: i == slotEth0, Pin: i != slotEth0,
			Addr4: addr4[i], Addr6: addr6[i], Gateway4: gw4[i], Gateway6: gw6[i],
		})
	}
	return cfg
}

// load loads a collection for the pod with a flow table of entries.
func (e *env) load(entries uint32) (*datapath.Objects, error) {
	return datapath.Load(e.config(entries))
}
