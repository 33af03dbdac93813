package emulation

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// Ports of the echo servers a pod runs.
const (
	EchoTCPPort = 8080
	EchoUDPPort = 5353
	GroupPort   = 5000
)

// ProbeTimeout bounds every probe: a reply that leaves by the wrong interface never comes.
var ProbeTimeout = time.Second

// Echo is a pod's TCP and UDP echo servers, bound to the wildcard address: the UDP server
// replies from whatever source the kernel picks, which is eth0's address for a client routed
// via eth0 — the case policy routing cannot fix.
type Echo struct {
	tcp net.Listener
	udp net.PacketConn
	wg  sync.WaitGroup
}

// StartEcho starts the servers inside the pod's namespace.
func StartEcho(n ns.NetNS) (*Echo, error) {
	e := &Echo{}
	err := n.Do(func(ns.NetNS) (err error) {
		if e.tcp, err = net.Listen("tcp", fmt.Sprintf(":%d", EchoTCPPort)); err != nil {
			return err
		}
		e.udp, err = net.ListenPacket("udp", fmt.Sprintf(":%d", EchoUDPPort))
		return err
	})
	if err != nil {
		e.Close()
		return nil, err
	}
	e.wg.Add(2)
	go e.serveTCP()
	go e.serveUDP()
	return e, nil
}

func (e *Echo) serveTCP() {
	defer e.wg.Done()
	for {
		c, err := e.tcp.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(c, c)
		}()
	}
}

func (e *Echo) serveUDP() {
	defer e.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := e.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = e.udp.WriteTo(buf[:n], from)
	}
}

// Close stops the servers.
func (e *Echo) Close() {
	if e.tcp != nil {
		e.tcp.Close()
	}
	if e.udp != nil {
		e.udp.Close()
	}
	e.wg.Wait()
}

// ProbeTCP connects from n to addr, sends a line and expects it back.
func ProbeTCP(ctx context.Context, n ns.NetNS, addr netip.AddrPort) error {
	var c net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: ProbeTimeout}
		c, err = d.DialContext(ctx, "tcp", addr.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("tcp connect %s: %w", addr, err)
	}
	defer c.Close()
	return echoOnce(c, addr)
}

// ProbeUDP sends a datagram from n to addr on a connected socket and expects it back. A reply
// from another source address (eth0's) is not delivered to a connected socket, as with any
// real client that checks who answers.
func ProbeUDP(ctx context.Context, n ns.NetNS, addr netip.AddrPort) error {
	var c net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: ProbeTimeout}
		c, err = d.DialContext(ctx, "udp", addr.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("udp %s: %w", addr, err)
	}
	defer c.Close()
	return echoOnce(c, addr)
}

func echoOnce(c net.Conn, addr netip.AddrPort) error {
	_ = c.SetDeadline(time.Now().Add(ProbeTimeout))
	msg := []byte("steer probe\n")
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("%s %s: send: %w", c.LocalAddr().Network(), addr, err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("%s %s: no reply: %w", c.LocalAddr().Network(), addr, err)
	}
	return nil
}

// Ping waits up to twice ProbeTimeout for one ICMP echo reply from addr, sending a request
// every 200 ms: the first may be lost while the router resolves the pod's address.
func Ping(ctx context.Context, nsName string, addr netip.Addr) error {
	secs := fmt.Sprint(int(2*ProbeTimeout.Seconds() + 0.5))
	_, err := execIn(ctx, nsName, "ping", "-n", "-q", "-c", "1", "-i", "0.2", "-w", secs, addr.String())
	if err != nil {
		return fmt.Errorf("ping %s: no reply", addr)
	}
	return nil
}

// Probe names one kind of probe, for tables of cases.
type Probe string

// The probes.
const (
	ICMP Probe = "icmp"
	TCP  Probe = "tcp"
	UDP  Probe = "udp"
)

// Run runs probe from the namespace n (named name) to addr.
func (p Probe) Run(ctx context.Context, n ns.NetNS, name string, addr netip.Addr) error {
	switch p {
	case ICMP:
		return Ping(ctx, name, addr)
	case TCP:
		return ProbeTCP(ctx, n, netip.AddrPortFrom(addr, EchoTCPPort))
	case UDP:
		return ProbeUDP(ctx, n, netip.AddrPortFrom(addr, EchoUDPPort))
	}
	return errors.New("unknown probe " + string(p))
}

// IsTimeout tells whether a probe failed by getting no answer (the symptom), rather than by a
// local error.
func IsTimeout(err error) bool {
	var ne net.Error
	return err != nil && (errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "no reply"))
}
