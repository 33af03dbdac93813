// Command steerctl shows what Steer does on a node. It reads the pins under the bpffs root
// directly, so it works when steerd is down.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
)

const usage = `steerctl shows Steer's state on this node.

Usage:
  steerctl [flags] attachments          pods (containers) with Steer's programs and their interfaces
  steerctl [flags] flows [container]    learned flows
  steerctl [flags] stats [container]    packet counters per interface and reason
  steerctl [flags] groups [container]   multicast groups and the interfaces that take them
  steerctl [flags] services [container] Service frontends, their backends and counters
  steerctl [flags] doctor               check this node: kernel, BTF, bpffs, CNI config, steerd, stale pins

Flags:
`

func main() {
	fs := flag.NewFlagSet("steerctl", flag.ExitOnError)
	root := fs.String("bpffs", bpffs.DefaultRoot, "Steer's pin root")
	output := fs.String("o", "table", "output format: table or json")
	confDir := fs.String("cni-conf-dir", "/etc/cni/net.d", "CNI config directory (doctor)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() < 1 {
		fs.Usage()
		os.Exit(2)
	}
	c := cli{layout: bpffs.Layout{Root: *root}, out: os.Stdout, json: *output == "json", confDir: *confDir}
	if err := c.run(fs.Arg(0), fs.Args()[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "steerctl:", err)
		os.Exit(1)
	}
}

type cli struct {
	layout  bpffs.Layout
	out     io.Writer
	json    bool
	confDir string
}

func (c cli) run(cmd string, args []string) error {
	switch cmd {
	case "attachments":
		return c.attachments()
	case "flows":
		return c.each(args, c.flows)
	case "stats":
		return c.each(args, c.stats)
	case "groups":
		return c.each(args, c.groups)
	case "services":
		return c.each(args, c.services)
	case "doctor":
		return c.doctor(c.confDir)
	}
	return fmt.Errorf("unknown command %q (attachments, flows, stats, groups, services, doctor)", cmd)
}

// each runs fn for the container named in args, or for every container with pins.
func (c cli) each(args []string, fn func(id string, st *datapath.State, tw *tabwriter.Writer)) error {
	ids := args
	if len(ids) == 0 {
		var err error
		if ids, err = c.layout.Containers(); err != nil {
			return err
		}
	}
	states := map[string]*datapath.State{}
	for _, id := range ids {
		st, err := datapath.ReadPinned(c.layout, id)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		states[id] = st
	}
	if c.json {
		return json.NewEncoder(c.out).Encode(states)
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	for _, id := range ids {
		fn(id, states[id], tw)
	}
	return tw.Flush()
}

func (c cli) attachments() error {
	return c.each(nil, func(id string, st *datapath.State, tw *tabwriter.Writer) {
		for _, itf := range st.Interfaces {
			role := "secondary"
			if itf.Primary {
				role = "primary"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\tifindex=%d\tpin=%t\t%s %s\t%s\n", short(id), itf.Name, role, itf.Index, itf.Pin,
				addr(itf.Addr4.String()), addr(itf.Addr6.String()), version(st))
		}
	})
}

func (c cli) flows(id string, st *datapath.State, tw *tabwriter.Writer) {
	for _, f := range st.Flows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t-> %s:%d\tvia %s\tnext-hop %s\n", short(id), proto(f.Proto), f.Remote, f.Local, f.LocalPort, f.Interface, f.PeerMAC)
	}
}

func (c cli) stats(id string, st *datapath.State, tw *tabwriter.Writer) {
	for _, ct := range st.Counters {
		name := ct.Interface
		if name == "" {
			name = "(other)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d pkts\t%d bytes\n", short(id), name, ct.Reason, ct.Packets, ct.Bytes)
	}
}

func (c cli) groups(id string, st *datapath.State, tw *tabwriter.Writer) {
	for _, g := range st.Groups {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", short(id), g.Prefix, strings.Join(g.Interfaces, ","))
	}
}

// version is the build of the pod's programs, as `layout=1 object=60f5f8b4`.
func version(st *datapath.State) string {
	s := fmt.Sprintf("layout=%d object=%08x", st.Version.Layout, st.Version.Object)
	if st.Upgrading {
		s += " (upgrading)"
	}
	return s
}

func (c cli) services(id string, st *datapath.State, tw *tabwriter.Writer) {
	for _, f := range st.Services {
		backends := make([]string, 0, len(f.Backends))
		for _, b := range f.Backends {
			backends = append(backends, b.String())
		}
		target := strings.Join(backends, ",")
		if target == "" {
			target = "(no backend: refused)"
		}
		affinity := ""
		if f.AffinityTimeout > 0 {
			affinity = "affinity " + f.AffinityTimeout.String()
		}
		ct := f.Counters
		fmt.Fprintf(tw, "%s\t%s\t%s %s\tvia %s\t-> %s\t%s\t%d pkts\t%d bytes\t%d conns\t%d no-backend\n", short(id), f.Service,
			strings.ToLower(f.Frontend.Proto.String()), f.Frontend.Addr, f.Interface, target, affinity, ct.Packets, ct.Bytes, ct.Connections, ct.NoBackend)
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func addr(s string) string {
	if s == "invalid IP" {
		return ""
	}
	return s
}

func proto(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return fmt.Sprint(p)
}
