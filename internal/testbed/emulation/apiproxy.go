package emulation

import (
	"errors"
	"io"
	"net"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// APIForwarder makes the apiserver on the machine's loopback reachable at the same address
// inside a node namespace, as a real node reaches its apiserver: CNI plugins run in the node's
// namespace and call the address in their kubeconfig. Plain TCP, so TLS is end to end.
type APIForwarder struct {
	ln net.Listener
	wg sync.WaitGroup
}

// ForwardAPI listens on addr (host:port on loopback) inside node and forwards every connection
// to the same address in the namespace the caller runs in.
func ForwardAPI(node ns.NetNS, addr string) (*APIForwarder, error) {
	f := &APIForwarder{}
	err := node.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		f.ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	f.wg.Add(1)
	go f.serve(addr)
	return f, nil
}

func (f *APIForwarder) serve(addr string) {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
		}()
	}
}

// Close stops listening; connections in flight end with their peers.
func (f *APIForwarder) Close() error {
	err := f.ln.Close()
	f.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
