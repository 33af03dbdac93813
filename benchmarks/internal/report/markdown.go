package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/steernet/steer/internal/testbed/cniplugins"
)

// Markdown renders the whole report; chart is the chart's file name next to it, or "".
func Markdown(r *Report, chart string) string {
	var b strings.Builder
	title := "Steer benchmarks, " + r.Start.Format("2006-01-02")
	if r.Quick {
		title += " (quick smoke run: figures are indicative only)"
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "Produced by `%s` in %s. Medians over the repetitions with their range in parentheses; "+
		"ratios and differences are taken pair by pair (each repetition against the baseline measured next to it) "+
		"and then their median, because the machine is shared and its speed drifts.\n\n", r.Command, r.Elapsed.Round(time.Second))
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "> **Note.** %s\n\n", n)
	}
	machine(&b, r)
	targets(&b, r)
	if chart != "" {
		fmt.Fprintf(&b, "![throughput and latency per variant](%s)\n\n", chart)
	}
	secondary(&b, r)
	primary(&b, r)
	multicast(&b, r)
	counters(&b, r)
	serviceSection(&b, r)
	perPacket(&b, r)
	cni(&b, r)
	node(&b, r)
	return b.String()
}

func machine(b *strings.Builder, r *Report) {
	m := r.Machine
	b.WriteString("## Machine and versions\n\n")
	rows := [][]string{
		{"host", m.Host},
		{"CPU", fmt.Sprintf("%s, %d CPUs (shared with other users)", m.CPU, m.CPUs)},
		{"memory", fmt.Sprintf("%.1f GiB", m.MemoryGiB)},
		{"kernel", m.Kernel},
		{"load average (1, 5, 15 min) at start / end", m.LoadBefore + " / " + m.LoadEnd},
		{"Go", m.Go},
		{"cilium/ebpf", m.Ebpf},
		{"iperf3", m.Iperf},
		{"CNI reference plugins", cniplugins.Version},
		{"Steer commit", m.Commit},
		{"BPF object (sha256)", m.Object},
	}
	for _, p := range r.Params {
		rows = append(rows, []string{p.Name, p.Value})
	}
	table(b, []string{"", ""}, rows)
}

// variantNotes say what each variant of the secondary path is.
var variantNotes = map[string]string{
	"direct":                     "the LAN host, on net1's own subnet: no router, nothing to steer (the physical limit)",
	"broken":                     "the remote client through the router, no fix: the reply follows eth0's default route",
	"static routes":              "a route for the client's subnet via the router in the NAD's IPAM (only known subnets)",
	"policy routing":             "`ip rule from <net1 address> table 100` + default via the router on net1 (Spiderpool's coordinator)",
	"Steer TC":                   "Steer, macvlan net1, TC ingress",
	"static routes, host-device": "static routes on a veth moved in with host-device (as a VF would be): Steer XDP's device without programs",
	"Steer XDP": "Steer, a veth moved in with host-device, XDP ingress. The kernel's veth driver turns TSO/GSO off " +
		"on the peer of a veth with any XDP program, so the LAN's large segments are split before they reach the pod",
}

func secondary(b *strings.Builder, r *Report) {
	set := r.Secondary
	if set == nil {
		return
	}
	base := set.Series[set.Variants[0]]
	b.WriteString("## Return path of a secondary interface\n\n")
	b.WriteString("A pod with eth0 on the overlay (default route) and net1 on the DMZ; the client is on a remote " +
		"subnet behind the router, so the pod's replies must leave by net1. iperf3 runs from the client " +
		"(client→pod), and with `-R` the pod sends over the connection the client opened (pod→client). " +
		"Request/response servers listen on the wildcard address; the UDP client's socket is connected, so a " +
		"reply from another source address counts as none. IPv4.\n\n")
	var rows [][]string
	for _, v := range set.Variants {
		rows = append(rows, []string{v, variantNotes[v]})
	}
	table(b, []string{"variant", "what it is"}, rows)

	b.WriteString("### Throughput (Gbit/s)\n\n")
	rows = nil
	for _, v := range set.Variants {
		s := set.Series[v]
		rows = append(rows, []string{v, cell(s[Fwd], 2), ratio(s[Fwd], base[Fwd]), cell(s[Rev], 2), ratio(s[Rev], base[Rev])})
	}
	table(b, []string{"variant", "client→pod", "× direct", "pod→client", "× direct"}, rows)

	b.WriteString("### Request/response latency (µs)\n\n")
	b.WriteString("Δ is the pair-by-pair difference of p50 against direct: the router hop plus whatever the variant adds.\n\n")
	rows = nil
	for _, v := range set.Variants {
		s := set.Series[v]
		rows = append(rows, []string{v, cell(s[UDP50], 1), cell(s[UDP99], 1), delta(s[UDP50], base[UDP50], 1),
			cell(s[TCP50], 1), cell(s[TCP99], 1), delta(s[TCP50], base[TCP50], 1)})
	}
	table(b, []string{"variant", "UDP p50", "UDP p99", "UDP Δp50", "TCP p50", "TCP p99", "TCP Δp50"}, rows)
}

func primary(b *strings.Builder, r *Report) {
	set := r.Primary
	if set == nil {
		return
	}
	base := set.Series[set.Variants[0]]
	b.WriteString("## Cost on the primary path\n\n")
	b.WriteString("Pod to pod over eth0 (the VXLAN overlay), the pods on different nodes, each with a DMZ macvlan " +
		"as well: without programs, and with Steer's programs attached (its egress program sees every packet " +
		"and must pass it untouched).\n\n")
	var rows [][]string
	for _, v := range set.Variants {
		s := set.Series[v]
		rows = append(rows, []string{v, cell(s[Fwd], 2), ratio(s[Fwd], base[Fwd]), cell(s[Rev], 2), ratio(s[Rev], base[Rev]),
			cell(s[UDP50], 1), delta(s[UDP50], base[UDP50], 1), cell(s[TCP50], 1), delta(s[TCP50], base[TCP50], 1)})
	}
	table(b, []string{"variant", "a→b Gbit/s", "× none", "b→a Gbit/s", "× none", "UDP p50 µs", "Δ", "TCP p50 µs", "Δ"}, rows)
}

func serviceSection(b *strings.Builder, r *Report) {
	if r.Service == nil || r.Service.Paths == nil {
		return
	}
	set := r.Service.Paths
	base := set.Series[set.Variants[0]]
	b.WriteString("## A Service on the secondary network\n\n")
	b.WriteString("A client pod on node 0 and one backend pod on node 1, both with eth0 on the overlay and net1 on the " +
		"DMZ (macvlan, Steer TC). The client reaches the backend straight at its DMZ address (the baseline), or at " +
		"the Service's ClusterIP, which its default route would send out eth0: the client's own TC program " +
		"DNATs it to the backend, sends it out net1 and reverse-NATs the replies. Same pod, same programs, same " +
		"backend and ports; only the address differs. iperf3 from the client (client→backend) and with `-R` " +
		"(backend→client); request/response with the settings above, on one established connection; *connect*: a " +
		"new TCP connection per transaction (connect, request, response, close, as netperf's TCP_CRR; the client " +
		"closes with a reset, so no TIME_WAIT piles up on either end), so through the ClusterIP every transaction " +
		"is a new flow for the proxy. IPv4. Goals: throughput ≥ 0.95× the backend's " +
		"address, at most 2 µs added to the RR p50; connect latency has no goal and is reported with its own ratio to the backend's address.\n\n")
	var rows [][]string
	for _, v := range set.Variants {
		s := set.Series[v]
		rows = append(rows, []string{v, cell(s[Fwd], 2), ratio(s[Fwd], base[Fwd]), cell(s[Rev], 2), ratio(s[Rev], base[Rev])})
	}
	table(b, []string{"to", "client→backend Gbit/s", "× backend", "backend→client Gbit/s", "× backend"}, rows)
	rows = nil
	for _, v := range set.Variants {
		s := set.Series[v]
		rows = append(rows, []string{v, cell(s[UDP50], 1), cell(s[UDP99], 1), delta(s[UDP50], base[UDP50], 1),
			cell(s[TCP50], 1), cell(s[TCP99], 1), delta(s[TCP50], base[TCP50], 1),
			cell(s[CRR50], 1), cell(s[CRR99], 1), delta(s[CRR50], base[CRR50], 1)})
	}
	table(b, []string{"to", "UDP p50 µs", "UDP p99", "UDP Δp50", "TCP p50 µs", "TCP p99", "TCP Δp50",
		"connect p50 µs", "connect p99", "connect Δp50"}, rows)
	if len(r.Service.Frontends) > 0 {
		b.WriteString("The client's frontend counters after the run (both directions' packets): every ClusterIP " +
			"measurement went through the proxy.\n\n")
		rows = nil
		for _, f := range r.Service.Frontends {
			rows = append(rows, []string{f.Frontend, f.Backends, fmt.Sprint(f.Packets), fmt.Sprint(f.Connections), fmt.Sprint(f.Refused)})
		}
		table(b, []string{"frontend", "backends", "packets", "connections", "refused"}, rows)
	}
}

func multicast(b *strings.Builder, r *Report) {
	mc := r.Multicast
	if mc == nil || len(mc.Variants) == 0 {
		return
	}
	b.WriteString("## Multicast\n\n")
	b.WriteString("The pod sends 64-byte datagrams to 239.1.1.1 from one thread with a default socket (no interface " +
		"named), as most applications do; *direct* names net1 with IP_MULTICAST_IF, the kernel's own path. " +
		"Received is what reached the UDP layer of the hosts joined on each LAN (the LAN host on the DMZ, the " +
		"router on the management LAN). The fan-out pod has the group on net1 (DMZ) and net2 (management). " +
		"The static-routes pod's `224.0.0.0/4` route came from the NAD without a gateway, and IPAM gave it the " +
		"interface's gateway: its multicast leaves by net1 as unicast to the router, which drops it.\n\n")
	base := mc.Recv[mc.Variants[0]]["DMZ"]
	var rows [][]string
	for _, v := range mc.Variants {
		for i, lan := range mc.LANs[v] {
			name, sent := v, cellScaled(mc.Sent[v], 1e-3, 0)
			if i > 0 {
				name, sent = "", ""
			}
			rows = append(rows, []string{name, sent, lan, cellScaled(mc.Recv[v][lan], 1e-3, 0), ratio(mc.Recv[v][lan], base)})
		}
	}
	table(b, []string{"variant", "sent kpps", "LAN", "received kpps", "received × direct"}, rows)
}

func counters(b *strings.Builder, r *Report) {
	if len(r.Counters) == 0 {
		return
	}
	b.WriteString("### Steer's counters after the run\n\n")
	b.WriteString("Read from each steered pod's pins: the packets of every measurement took Steer's path " +
		"(pinned replies and learned flows on net1, multicast copies on the fan-out pod).\n\n")
	var rows [][]string
	for _, c := range r.Counters {
		for i, row := range c.Rows {
			name := c.Variant
			if i > 0 {
				name = ""
			}
			rows = append(rows, []string{name, row.Interface, row.Reason.String(), fmt.Sprint(row.Packets), fmt.Sprint(row.Bytes)})
		}
	}
	table(b, []string{"pod", "interface", "reason", "packets", "bytes"}, rows)
}

func cni(b *strings.Builder, r *Report) {
	b.WriteString("## CNI ADD/DEL latency\n\n")
	if r.CNI == nil {
		b.WriteString("benchmarks/cni was not run; nothing measured.\n")
		return
	}
	fmt.Fprintf(b, "Output of `%s`", r.CNI.Command)
	if r.CNI.Err != "" {
		fmt.Fprintf(b, " (%s)", r.CNI.Err)
	}
	fmt.Fprintf(b, ":\n\n```\n%s\n```\n", strings.TrimSpace(r.CNI.Output))
}

func node(b *strings.Builder, r *Report) {
	b.WriteString("\n## Pods on a real node: Steer against Multus under kubelet and containerd\n\n")
	if r.Node == nil {
		b.WriteString("benchmarks/node was not run; nothing measured.\n")
		return
	}
	if r.Node.Err != "" {
		fmt.Fprintf(b, "`%s` failed (%s):\n\n```\n%s\n```\n", r.Node.Command, r.Node.Err, strings.TrimSpace(r.Node.Output))
		return
	}
	fmt.Fprintf(b, "Results of `%s`:\n\n%s\n", r.Node.Command, strings.TrimSpace(r.Node.Output))
}
