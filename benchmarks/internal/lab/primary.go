package lab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/steering"
)

// primary adds two pairs of pods, one on each node, each pod with eth0 and a DMZ macvlan: one
// pair without programs and one with Steer. The path is pod a to pod b over eth0 (the overlay),
// where Steer's egress program runs on every packet and must stay out of the way.
func (l *Lab) primary(ctx context.Context, s *Setup) error {
	for i, v := range []struct {
		name string
		dp   steering.Dataplane
	}{{NoPrograms, steering.Off{}}, {WithSteer, l.steer(datapath.IngressTC)}} {
		var pods [2]*Pod
		for node := range 2 {
			name := fmt.Sprintf("pp%d-%c", i, 'a'+node)
			p, err := l.AddPod(ctx, name, node, v.dp, []emulation.Network{l.eth0(node), macvlan(emulation.DMZ, 40+2*i+node, "net1")})
			if err != nil {
				return err
			}
			pods[node] = p
		}
		to, err := eth0Addr(ctx, pods[1])
		if err != nil {
			return err
		}
		s.Primary = append(s.Primary, Path{Name: v.name, From: pods[0].NS, To: to, Pod: pods[1]})
	}
	return nil
}

func eth0Addr(ctx context.Context, p *Pod) (netip.Addr, error) {
	out, err := p.Exec(ctx, "ip", "-4", "-o", "addr", "show", "dev", "eth0", "scope", "global")
	if err != nil {
		return netip.Addr{}, err
	}
	f := strings.Fields(out)
	if len(f) < 4 {
		return netip.Addr{}, fmt.Errorf("no IPv4 address on eth0 of %s: %q", p.Name, out)
	}
	pfx, err := netip.ParsePrefix(f[3])
	return pfx.Addr(), err
}
