package lab

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/pkg/datapath"
)

// Sender is a pod multicasting to the benchmark's group, and where its copies should land.
type Sender struct {
	Name      string
	Pod       *Pod
	IfName    string // names the interface (IP_MULTICAST_IF); "": a default socket, as most apps
	Receivers []Receiver
}

// Receiver is a host joined to the group on one LAN.
type Receiver struct {
	LAN string
	NS  *podns.NS
}

func (l *Lab) multicast(ctx context.Context, s *Setup) error {
	group := emulation.Group4
	lan, err := emulation.JoinGroup(l.Topo.LANHost, group, "eth0")
	if err != nil {
		return err
	}
	l.onClose(func() error { lan.Close(); return nil })
	mgmt, err := emulation.JoinGroup(l.Topo.Router, group, "mgmt")
	if err != nil {
		return err
	}
	l.onClose(func() error { mgmt.Close(); return nil })

	dmz := []Receiver{{"DMZ", l.Topo.LANHost}}
	pod := map[string]*Pod{}
	for _, p := range s.Secondary {
		pod[p.Name] = p.Pod
	}
	s.Multicast = []Sender{
		{Name: Direct, Pod: pod[Direct], IfName: "net1", Receivers: dmz},
		{Name: Broken, Pod: pod[Broken], Receivers: dmz},
		{Name: Static, Pod: pod[Static], Receivers: dmz},
		{Name: Policy, Pod: pod[Policy], Receivers: dmz},
		{Name: SteerTC, Pod: pod[SteerTC], Receivers: dmz},
	}
	fan, err := l.AddPod(ctx, "fanout", 0, l.steer(datapath.IngressTC), []emulation.Network{l.eth0(0),
		macvlan(emulation.DMZ, hostFanOut, "net1", Group), macvlan(emulation.Mgmt, hostFanOut, "net2", Group)})
	if err != nil {
		return err
	}
	s.Multicast = append(s.Multicast, Sender{Name: FanOut, Pod: fan,
		Receivers: []Receiver{dmz[0], {"management", l.Topo.Router}}})
	return nil
}

// Blast sends 64-byte datagrams to the group as fast as one thread can for d, and returns the
// rate sent and the rate that reached each receiver's UDP layer (delivered or dropped for a
// full buffer: the receivers do not read, so the count is of what arrived, not of what a
// reader kept up with).
func Blast(ctx context.Context, s Sender, d time.Duration) (sent float64, recv []float64, err error) {
	before := make([]uint64, len(s.Receivers))
	for i, r := range s.Receivers {
		if before[i], err = udpArrivals(ctx, r.NS.Name()); err != nil {
			return 0, nil, err
		}
	}
	n, err := send(s.Pod.NS, s.IfName, d)
	if err != nil {
		return 0, nil, err
	}
	time.Sleep(50 * time.Millisecond) // let the last copies through the softirqs
	for i, r := range s.Receivers {
		after, err := udpArrivals(ctx, r.NS.Name())
		if err != nil {
			return 0, nil, err
		}
		recv = append(recv, float64(after-before[i])/d.Seconds())
	}
	return float64(n) / d.Seconds(), recv, nil
}

func send(n ns.NetNS, ifname string, d time.Duration) (int, error) {
	var fd int
	err := n.Do(func(ns.NetNS) (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if ifname == "" {
			return nil
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
	})
	if err != nil {
		return 0, fmt.Errorf("multicast socket: %w", err)
	}
	defer unix.Close(fd)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	to := &unix.SockaddrInet4{Port: emulation.GroupPort, Addr: emulation.Group4.As4()}
	payload := make([]byte, 64)
	sent := 0
	for end := time.Now().Add(d); ; {
		for range 256 {
			if err := unix.Sendto(fd, payload, 0, to); err == nil {
				sent++
			}
		}
		if time.Now().After(end) {
			return sent, nil
		}
	}
}

// udpArrivals reads the UDP datagrams that reached a socket in the named namespace: delivered
// (InDatagrams) or dropped there (InErrors, which includes RcvbufErrors).
func udpArrivals(ctx context.Context, nsName string) (uint64, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0, fmt.Errorf("read UDP counters in %s: %w", nsName, err)
	}
	var names, vals []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "Udp:" {
			if names == nil {
				names = f
			} else {
				vals = f
			}
		}
	}
	var total uint64
	for i := range min(len(names), len(vals)) {
		if names[i] == "InDatagrams" || names[i] == "InErrors" {
			v, _ := strconv.ParseUint(vals[i], 10, 64)
			total += v
		}
	}
	return total, nil
}
