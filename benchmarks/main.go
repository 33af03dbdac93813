// Command benchmarks measures Steer (`make bench`; `go run ./benchmarks -h`):
//
//   - the dataplane on internal/testbed/emulation's two-node emulation: iperf3 throughput both ways, UDP and
//     TCP request/response latency and multicast packet rates, for every way of getting a reply
//     out of a pod's secondary interface (direct, broken, static routes, policy routing, Steer
//     TC and XDP), and the cost of Steer on the primary path;
//   - a Service on the secondary network: a client pod to a backend through the ClusterIP (the
//     pod's own programs proxy it) against straight to the backend's address;
//   - the BPF programs per packet with BPF_PROG_TEST_RUN, every branch, on flow tables of
//     several sizes, and the flow table's behaviour beyond its capacity;
//   - CNI ADD/DEL latency from benchmarks/cni, when that package exists;
//   - pod start and deletion on a real node (kubelet and containerd) from benchmarks/node, Steer
//     against Multus under the same runtime.
//
// It writes benchmarks/results/<date>.md and a chart next to it, and prints a summary. It needs
// root, the tools of `make deps`, and leaves nothing behind: namespaces and pins are removed
// also when a section fails or the run is interrupted (Ctrl-C).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/steernet/steer/benchmarks/internal/perpkt"
	"github.com/steernet/steer/benchmarks/internal/report"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchmarks:", err)
		os.Exit(1)
	}
}

var allSections = []string{"dataplane", "service", "perpacket", "cni", "node"}

func run() error {
	quick := flag.Bool("quick", false, "a one-minute smoke run of every section")
	out := flag.String("out", "benchmarks/results", "directory of the report and chart")
	sections := flag.String("sections", strings.Join(allSections, ","), "sections to run")
	reps := flag.Int("reps", 0, "repetitions of the dataplane measurements (0: 5, or 1 with -quick)")
	verbose := flag.Bool("v", false, "log every measurement")
	rrCPU := flag.Int("rr-cpu", runtime.NumCPU()-1, "CPU of both ends of the request/response runs; -1: unpinned")
	nodePods := flag.Int("node-pods", 20, "measured pods per row and peer on the real node (2 with -quick)")
	hold := flag.Bool("hold", false, "build the emulation, list its namespaces and wait for Ctrl-C (to inspect it)")
	flag.Parse()
	if os.Geteuid() != 0 {
		return errors.New("needs root: creates network namespaces and loads BPF programs")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	p := defaults(*quick)
	if *reps > 0 {
		p.Reps = *reps
	}
	p.RR.CPU = *rrCPU
	want := map[string]bool{}
	for _, s := range strings.Split(*sections, ",") {
		want[strings.TrimSpace(s)] = true
	}
	// A first Ctrl-C cancels the run and lets every section clean up; the deferred cleanups
	// run before the process exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep := &report.Report{Start: time.Now(), Quick: *quick, Command: strings.TrimSpace("go run ./benchmarks " + strings.Join(os.Args[1:], " ")),
		Machine: report.Describe("pkg/datapath/steer_bpfel.o"), Params: p.list()}
	prefix := "sb" + suffix()
	var errs []error
	if *hold {
		return holdLab(ctx, prefix, p, log)
	}
	if want["dataplane"] {
		if err := dataplane(ctx, prefix, p, rep, log); err != nil {
			errs = append(errs, fmt.Errorf("dataplane: %w", err))
		}
	}
	if want["service"] && ctx.Err() == nil {
		if err := service(ctx, prefix, p, rep, log); err != nil {
			errs = append(errs, fmt.Errorf("service: %w", err))
		}
	}
	if want["perpacket"] && ctx.Err() == nil {
		log.Info("per-packet cost (BPF_PROG_TEST_RUN)")
		res, err := perpkt.Run(ctx, prefix, p.PerPacket, log)
		rep.PerPacket = res
		if err != nil {
			errs = append(errs, fmt.Errorf("per-packet: %w", err))
		}
	}
	if want["cni"] && ctx.Err() == nil {
		rep.CNI = runCNI(ctx, *quick, log)
	}
	if want["node"] && ctx.Err() == nil {
		pods := *nodePods
		if *quick {
			pods = 2
		}
		rep.Node = runNode(ctx, pods, log)
	}
	if err := ctx.Err(); err != nil {
		return errors.Join(append(errs, fmt.Errorf("interrupted, report not written: %w", err))...)
	}
	rep.Elapsed = time.Since(rep.Start)
	rep.Machine.Finish()
	for _, e := range errs {
		rep.Notes = append(rep.Notes, "Section failed: "+e.Error())
	}
	path, err := write(rep, *out, partial(*sections))
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	fmt.Print(report.Summary(rep))
	fmt.Printf("\nreport: %s (%s)\n", path, rep.Elapsed.Round(time.Second))
	return errors.Join(errs...)
}

// partial names a run of some sections only ("service"), so its report does not pass for a full
// run's; "" for every section.
func partial(sections string) string {
	var sel []string
	for _, s := range allSections {
		if slices.Contains(strings.Split(strings.ReplaceAll(sections, " ", ""), ","), s) {
			sel = append(sel, s)
		}
	}
	if len(sel) == len(allSections) {
		return ""
	}
	return strings.Join(sel, "-")
}

// write renders the report and its chart into dir, named after the run's date and, for a
// partial run, its sections; the chart's failure is noted, not fatal.
func write(rep *report.Report, dir, sections string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := rep.Start.Format("2006-01-02")
	if sections != "" {
		name += "-" + sections
	}
	if rep.Quick {
		name += "-quick"
	}
	chart := name + ".svg"
	if err := report.Chart(rep, filepath.Join(dir, chart)); err != nil {
		rep.Notes = append(rep.Notes, "No chart: "+err.Error())
		chart = ""
	}
	path := filepath.Join(dir, name+".md")
	return path, os.WriteFile(path, []byte(report.Markdown(rep, chart)), 0o644)
}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
