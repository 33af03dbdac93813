package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/steernet/steer/benchmarks/internal/stats"
	"github.com/steernet/steer/internal/testbed/podns"
)

// startIperf runs an iperf3 server in the named namespace until the returned function kills it.
// --idle-timeout restarts a server left waiting by a client whose test broke half-way.
func startIperf(nsName string) (func() error, error) {
	cmd := exec.Command("ip", "netns", "exec", nsName, "iperf3", "-s", "-p", strconv.Itoa(IperfPort), "--idle-timeout", "15")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("iperf3 server in %s: %w", nsName, err)
	}
	stop := func() error {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil
	}
	return stop, nil
}

// waitListening waits until something listens on TCP port inside the named namespace, so a
// first measurement does not race the server's start. It asks ss rather than connecting: a
// probe connection would count as a failed test in the iperf3 server.
func waitListening(ctx context.Context, nsName string, port int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, "ss", "-Hltn", fmt.Sprintf("sport = :%d", port)).Output()
		if err == nil && strings.TrimSpace(string(out)) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on :%d in %s", port, nsName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// iperfReport is the part of iperf3's JSON output read here.
type iperfReport struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// Iperf runs one TCP stream from the namespace from to addr for secs seconds and returns the
// goodput the receiver saw in Gbit/s; reverse has the server (the pod) send over the flow the
// client opened. A path that cannot connect fails after a second, as a broken return path does.
func Iperf(ctx context.Context, from *podns.NS, addr netip.Addr, secs float64, reverse bool) stats.Sample {
	args := []string{"netns", "exec", from.Name(), "iperf3", "-c", addr.String(), "-p", strconv.Itoa(IperfPort),
		"-t", strconv.FormatFloat(secs, 'f', -1, 64), "-J", "--connect-timeout", "1000"}
	if reverse {
		args = append(args, "-R")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs*float64(time.Second))+10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).Output()
	var rep iperfReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		return stats.Fail(fmt.Sprintf("iperf3: %v", errors.Join(err, jerr)))
	}
	if rep.Error != "" {
		return stats.Fail(shorten(rep.Error))
	}
	if err != nil {
		return stats.Fail(fmt.Sprintf("iperf3: %v", err))
	}
	return stats.Val(rep.End.SumReceived.BitsPerSecond / 1e9)
}

// shorten keeps iperf3's reason ("Connection timed out") and drops its advice.
func shorten(msg string) string {
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return strings.ToLower(msg[i+2:])
	}
	return msg
}
