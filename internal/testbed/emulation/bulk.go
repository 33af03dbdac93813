package emulation

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// BulkPort serves BulkSize bytes to whoever connects: full-size segments from the pod, the
// traffic that black-holes when a reply path has a smaller MTU than the route the pod used.
const (
	BulkPort = 8081
	BulkSize = 256 << 10
)

// StartBulk starts the bulk server inside n; the returned function stops it.
func StartBulk(n ns.NetNS) (func(), error) {
	var l net.Listener
	err := n.Do(func(ns.NetNS) (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf(":%d", BulkPort))
		return err
	})
	if err != nil {
		return nil, err
	}
	payload := make([]byte, BulkSize)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = c.Write(payload)
			}()
		}
	}()
	return func() { l.Close() }, nil
}

// FetchBulk downloads the bulk payload from addr within timeout.
func FetchBulk(ctx context.Context, n ns.NetNS, addr netip.Addr, timeout time.Duration) error {
	var c net.Conn
	err := n.Do(func(ns.NetNS) (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, BulkPort).String())
		return err
	})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	got, err := io.Copy(io.Discard, c)
	if err != nil || got != BulkSize {
		return fmt.Errorf("bulk from %s: got %d of %d bytes: %v", addr, got, BulkSize, err)
	}
	return nil
}
