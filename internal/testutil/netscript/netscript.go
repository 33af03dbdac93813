// Package netscript builds test topologies with iproute2: commands collected in order, run one
// after the other, stopping at the first failure with its output.
package netscript

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// Script collects commands and runs them in order.
type Script struct{ cmds [][]string }

// Cmd adds a command.
func (s *Script) Cmd(args ...string) { s.cmds = append(s.cmds, args) }

// IP adds `ip -n ns <args>`, the arguments split on spaces after formatting.
func (s *Script) IP(ns, format string, a ...any) {
	s.Cmd(append([]string{"ip", "-n", ns}, strings.Fields(fmt.Sprintf(format, a...))...)...)
}

// Sysctl sets key=value pairs inside ns.
func (s *Script) Sysctl(ns string, kv ...string) {
	s.Cmd(append([]string{"ip", "netns", "exec", ns, "sysctl", "-qw"}, kv...)...)
}

// Veth joins two namespaces; the names are local to each namespace.
func (s *Script) Veth(ns1, name1, ns2, name2 string) {
	s.Cmd("ip", "-n", ns1, "link", "add", name1, "type", "veth", "peer", "name", name2, "netns", ns2)
	s.IP(ns1, "link set %s up", name1)
	s.IP(ns2, "link set %s up", name2)
}

// Uplink plugs a namespace into a LAN switch's bridge br0.
func (s *Script) Uplink(ns, name, sw, port string) {
	s.Veth(ns, name, sw, port)
	s.IP(sw, "link set %s master br0", port)
}

// Addr gives dev one address of each family (IPv6 without duplicate address detection).
func (s *Script) Addr(ns, dev string, a4 netip.Addr, p4 netip.Prefix, a6 netip.Addr, p6 netip.Prefix) {
	s.IP(ns, "addr add %s/%d dev %s", a4, p4.Bits(), dev)
	s.IP(ns, "-6 addr add %s/%d dev %s nodad", a6, p6.Bits(), dev)
}

// Run runs the commands in order.
func (s *Script) Run(ctx context.Context) error {
	for _, c := range s.cmds {
		out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
