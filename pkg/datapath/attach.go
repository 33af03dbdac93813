package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/pkg/bpffs"
)

// IngressMode chooses the hook that learns flows on secondary interfaces.
type IngressMode int

const (
	// IngressAuto uses XDP where the interface has native XDP and it costs nothing (a physical
	// device or VF moved in with host-device) and TC elsewhere: macvlan, bridge ports, vxlan,
	// and veth, whose driver turns off TSO/GSO on its peer while any XDP program is attached
	// (measured: a quarter of the throughput).
	IngressAuto IngressMode = iota
	IngressTC
	IngressXDP
)

// Options tune Attach; the zero value is what a node uses.
type Options struct {
	Layout  bpffs.Layout // zero: bpffs.Default()
	Ingress IngressMode
	// LegacyTC forces clsact + cls_bpf through netlink instead of TCX links, as on kernels
	// before 6.6. Those filters are owned by the interface, not by a pin.
	LegacyTC bool
	// Spares holds a collection loaded ahead for the next pod; nil: each Attach loads its own.
	Spares *Spares
}

func (o Options) layout() bpffs.Layout {
	if o.Layout.Root == "" {
		return bpffs.Default()
	}
	return o.Layout
}

// Attach loads cfg's collection, attaches it to the interfaces in the network namespace at
// netnsPath and pins it under the container's directory. Attaching again replaces what was
// there. On failure nothing is left attached or pinned.
func Attach(netnsPath, containerID string, cfg Config, opts Options) (err error) {
	layout := opts.layout()
	dir, err := layout.Dir(containerID)
	if err != nil {
		return err
	}
	// A previous attachment always left its maps pinned in dir (legacy TC filters too).
	if _, err := os.Stat(dir); err == nil {
		if err := Detach(netnsPath, containerID, opts); err != nil {
			return fmt.Errorf("replace previous attachment: %w", err)
		}
	}
	if err := layout.EnsureMounted(); err != nil {
		return err
	}

	objs, err := load(cfg, needsXDP(netnsPath, cfg.Interfaces, opts.Ingress), opts.Spares)
	// The next pod's set is made once this one is attached, not to compete for the CPU with it.
	defer opts.Spares.attached()
	if err != nil {
		return err
	}
	defer objs.Close()

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, Detach(netnsPath, containerID, opts))
		}
	}()
	for name, m := range objs.pins {
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pin %s: %w", name, err)
		}
	}

	return attachHooks(netnsPath, dir, cfg.Interfaces, objs, opts)
}

// attachHooks attaches every hook of every interface, in one entry into the namespace (an
// interface index means something only there): egress everywhere (replies, sources and
// multicast are steered from whichever interface the kernel chose), ingress where flows are
// learned: pinned secondaries, and the primary when a default route leaves by a secondary.
// One after the other: attaching them concurrently, each goroutine in the namespace, measured
// no faster on Linux 6.18 (BenchmarkAttachDetach, interleaved: 11-15 ms for a pod with three
// secondaries either way, about 1.5 ms per secondary).
func attachHooks(netnsPath, dir string, itfs []Interface, objs *Objects, opts Options) error {
	return ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		for _, itf := range itfs {
			if err := attachTC(dir, itf, objs.SteerEgress, ebpf.AttachTCXEgress, opts); err != nil {
				return fmt.Errorf("attach egress to %s: %w", itf.Name, err)
			}
			if !itf.Pin {
				continue
			}
			if err := attachIngress(dir, itf, objs, opts); err != nil {
				return fmt.Errorf("attach ingress to %s: %w", itf.Name, err)
			}
		}
		return nil
	})
}

// attachIngress hooks the program that learns flows: XDP where it is worth it, TC elsewhere.
func attachIngress(dir string, itf Interface, objs *Objects, opts Options) error {
	if opts.Ingress == IngressXDP || opts.Ingress == IngressAuto && xdpWorthIt(itf) {
		err := attachXDP(dir, itf, objs.SteerIngressXdp)
		if err == nil || opts.Ingress == IngressXDP {
			return err
		}
	}
	return attachTC(dir, itf, objs.SteerIngress, ebpf.AttachTCXIngress, opts)
}

// needsXDP tells whether attachIngress may attach the XDP program to one of itfs. It enters
// the namespace only for interfaces whose kind the caller did not say.
func needsXDP(netnsPath string, itfs []Interface, mode IngressMode) bool {
	if mode != IngressAuto {
		return mode == IngressXDP
	}
	need, unknown := false, false
	for _, itf := range itfs {
		need = need || itf.Pin && itf.Kind != "" && xdpWorthKind(itf.Kind)
		unknown = unknown || itf.Pin && itf.Kind == ""
	}
	if need || !unknown {
		return need
	}
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		for _, itf := range itfs {
			need = need || itf.Pin && xdpWorthIt(itf)
		}
		return nil
	})
	return need || err != nil // without the namespace, attaching fails anyway
}

// xdpWorthIt tells whether IngressAuto should try XDP on an interface of the current namespace.
func xdpWorthIt(itf Interface) bool {
	if itf.Kind != "" {
		return xdpWorthKind(itf.Kind)
	}
	l, err := netlink.LinkByIndex(itf.Index)
	if err != nil {
		return false
	}
	return xdpWorthKind(l.Type())
}

// xdpWorthKind tells whether IngressAuto should try XDP on a link of a kind (see IngressAuto).
func xdpWorthKind(kind string) bool {
	switch kind {
	case "veth", "macvlan", "macvtap", "bridge", "vxlan", "geneve", "ipvlan", "dummy":
		return false
	}
	return true
}

func attachXDP(dir string, itf Interface, prog *ebpf.Program) error {
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: itf.Index, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}
	defer l.Close()
	return l.Pin(filepath.Join(dir, bpffs.LinkPin(itf.Name, bpffs.HookXDP)))
}

func attachTC(dir string, itf Interface, prog *ebpf.Program, at ebpf.AttachType, opts Options) error {
	hook := bpffs.HookIngress
	if at == ebpf.AttachTCXEgress {
		hook = bpffs.HookEgress
	}
	if !opts.LegacyTC {
		l, err := link.AttachTCX(link.TCXOptions{Program: prog, Attach: at, Interface: itf.Index})
		if err == nil {
			defer l.Close()
			return l.Pin(filepath.Join(dir, bpffs.LinkPin(itf.Name, hook)))
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("tcx %s: %w", hook, err)
		}
	}
	return attachClsBPF(itf.Index, prog, hook)
}

// Legacy TC: a clsact qdisc and a direct-action cls_bpf filter per hook.
const clsPriority = 0x5e

func attachClsBPF(ifindex int, prog *ebpf.Program, hook string) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(qdisc); err != nil {
		return fmt.Errorf("clsact qdisc: %w", err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs:  clsFilterAttrs(ifindex, hook),
		Fd:           prog.FD(),
		Name:         "steer_" + hook,
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("cls_bpf %s: %w", hook, err)
	}
	return nil
}

func clsFilterAttrs(ifindex int, hook string) netlink.FilterAttrs {
	parent := uint32(netlink.HANDLE_MIN_INGRESS)
	if hook == bpffs.HookEgress {
		parent = netlink.HANDLE_MIN_EGRESS
	}
	return netlink.FilterAttrs{
		LinkIndex: ifindex,
		Parent:    parent,
		Handle:    1,
		Priority:  clsPriority,
		Protocol:  0x0003, // ETH_P_ALL
	}
}

// Detach removes a container's attachment: its pins (which detaches pinned links) and any
// legacy TC filters in its namespace. Missing pins, namespace or interfaces are not errors, so
// DEL can call it any number of times.
func Detach(netnsPath, containerID string, opts Options) error {
	var errs []error
	if netnsPath != "" {
		err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error { return removeClsBPF() })
		var nsErr ns.NSPathNotExistErr
		if err != nil && !errors.As(err, &nsErr) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, opts.layout().Remove(containerID))
	return errors.Join(errs...)
}

// removeClsBPF deletes Steer's legacy filters from every interface of the current namespace.
func removeClsBPF() error {
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		for _, hook := range []string{bpffs.HookIngress, bpffs.HookEgress} {
			attrs := clsFilterAttrs(l.Attrs().Index, hook)
			filters, err := netlink.FilterList(l, attrs.Parent)
			if err != nil {
				continue // no clsact qdisc
			}
			for _, f := range filters {
				if f.Attrs().Priority == clsPriority {
					_ = netlink.FilterDel(f)
				}
			}
		}
	}
	return nil
}
