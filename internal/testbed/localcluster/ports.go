package localcluster

import (
	"context"
	"fmt"
	"net"

	"github.com/steernet/steer/internal/testutil/child"
)

// portAttempts bounds restarts after a child lost its port to another process.
const portAttempts = 3

type probeFunc func(context.Context) error

// startOnFreePorts calls start with n loopback ports that were free a moment ago and waits until
// the child passes its probe. Another process may take a port before the child binds it, so a
// child that failed with "address already in use" is started again on new ports.
func startOnFreePorts(ctx context.Context, n int, start func(ports []int) (*child.Process, probeFunc, error)) (*child.Process, error) {
	var lastErr error
	for range portAttempts {
		ports, err := freePorts(n)
		if err != nil {
			return nil, err
		}
		p, probe, err := start(ports)
		if err != nil {
			return nil, err
		}
		err = waitReady(ctx, p, probe)
		if err == nil {
			return p, nil
		}
		lastErr = err
		clash := portClash(p) // before kill, which makes every child look exited
		if killErr := p.Kill(stopTimeout); killErr != nil {
			return nil, fmt.Errorf("%w; %w", err, killErr)
		}
		if !clash {
			break
		}
	}
	return nil, lastErr
}

// freePorts returns n distinct loopback ports that are free right now.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		// Held open until all are picked, so the kernel hands out n different ports.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
