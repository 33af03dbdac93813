package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/pkg/k8s"
)

// Fault is a kind of injected fault.
type Fault string

// Per-pod faults, injected into one cycle each, in turn.
const (
	PluginKilled    Fault = "plugin SIGKILLed during ADD, then DEL"
	DelegateFails   Fault = "delegate fails (ADD rolled back)"
	DelegateHangs   Fault = "delegate hangs (killed at delegateTimeout)"
	NetnsGone       Fault = "netns deleted before DEL"
	PinsRemoved     Fault = "bpffs pins removed before DEL"
	APIServerDown   Fault = "apiserver killed and restarted mid-churn"
	SteerdRestarted Fault = "steerd SIGKILLed and restarted mid-churn"
)

var podFaults = []Fault{PluginKilled, DelegateFails, DelegateHangs, NetnsGone, PinsRemoved}

// Options shape one phase of the campaign.
type Options struct {
	Mode       string // "thin" or "thick": a label; the Env is already set up for it
	Cycles     int
	Workers    int
	FaultEvery int // every FaultEvery-th cycle carries a per-pod fault; 0: none
	// Disrupt lists node-wide faults, each injected once, evenly spread over the phase.
	Disrupt []Fault
	// Warm, if set, is called once a tenth of the cycles are done (e.g. to sample memory).
	Warm func()
	Log  func(format string, args ...any)
}

// Result is what one phase measured.
type Result struct {
	Mode     string
	Cycles   int
	Elapsed  time.Duration
	Faults   map[Fault]int
	Add, Del []time.Duration // of the cycles without a fault, outside disruptions
	// Tolerated are ADDs that failed while the apiserver or steerd was down; the runtime
	// retries them. Each was followed by a DEL that had to succeed.
	Tolerated int
	// Errors are failures that should not happen (a DEL that failed, an ADD that failed for
	// no reason, a fault that did not fail its ADD). The first few are kept.
	Errors    []string
	ErrorsAll int
	mu        sync.Mutex
}

func (r *Result) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ErrorsAll++
	if len(r.Errors) < 10 {
		r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
	}
}

func (r *Result) count(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Faults[f]++
}

// disruption tracks node-wide faults: cycles that overlap one may fail their ADD.
type disruption struct {
	epoch atomic.Int64 // odd while a disruption lasts
}

func (d *disruption) begin()             { d.epoch.Add(1) }
func (d *disruption) end()               { d.epoch.Add(1) }
func (d *disruption) mark() int64        { return d.epoch.Load() }
func (d *disruption) quiet(m int64) bool { return m%2 == 0 && d.epoch.Load() == m }

// Churn runs one phase: workers create pods with two secondary networks on both nodes, ADD,
// check, DEL and delete them, with faults injected on the way.
func Churn(ctx context.Context, e *Env, o Options) *Result {
	res := &Result{Mode: o.Mode, Faults: map[Fault]int{}}
	start := time.Now()
	var (
		next     atomic.Int64 // cycles handed out
		done     atomic.Int64
		faultSeq atomic.Int64
		dis      disruption
		addTypic atomic.Int64 // a recent ADD duration, to aim the plugin kill into the ADD
		wg       sync.WaitGroup
	)
	addTypic.Store(int64(150 * time.Millisecond))

	// Node-wide faults fire when the phase reaches their share of cycles.
	disruptAt := map[int64]Fault{}
	for i, f := range o.Disrupt {
		disruptAt[int64(o.Cycles*(i+1)/(len(o.Disrupt)+1))] = f
	}
	disruptCh := make(chan Fault, len(o.Disrupt))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for f := range disruptCh {
			if err := disrupt(ctx, e, f, &dis, o.Log); err != nil {
				res.fail("%s: %v", f, err)
			}
			res.count(f)
		}
	}()

	var workers sync.WaitGroup
	for w := range o.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			node := w % 2
			for {
				i := next.Add(1)
				if i > int64(o.Cycles) || ctx.Err() != nil {
					return
				}
				var fault Fault
				if o.FaultEvery > 0 && i%int64(o.FaultEvery) == 0 {
					fault = podFaults[int(faultSeq.Add(1)-1)%len(podFaults)]
				}
				c := cycle{e: e, res: res, dis: &dis, node: node, fault: fault,
					name: fmt.Sprintf("%s-%d", o.Mode, i), addTypical: time.Duration(addTypic.Load())}
				if d, ok := c.run(ctx); ok {
					addTypic.Store(int64(d))
				}
				n := done.Add(1)
				if f, ok := disruptAt[n]; ok {
					disruptCh <- f
				}
				if n == int64(max(o.Cycles/10, 1)) && o.Warm != nil {
					o.Warm()
				}
				if n := done.Load(); o.Log != nil && n%int64(max(o.Cycles/10, 1)) == 0 {
					o.Log("%s: %d/%d cycles, %s", o.Mode, n, o.Cycles, time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	workers.Wait()
	close(disruptCh)
	wg.Wait()
	res.Cycles = int(min(done.Load(), int64(o.Cycles)))
	res.Elapsed = time.Since(start)
	return res
}

// cycle is one pod's life.
type cycle struct {
	e          *Env
	res        *Result
	dis        *disruption
	node       int
	fault      Fault
	name       string
	addTypical time.Duration
}

// run returns the ADD's duration and whether it was a plain cycle's.
func (c *cycle) run(ctx context.Context) (time.Duration, bool) {
	k := *c.e.Kubelets[c.node] // a copy: the exec may be this cycle's own
	networks := NetDMZ + "," + NetMgmt
	var killer *killingExec
	switch c.fault {
	case DelegateFails:
		networks += "," + NetBroken
	case DelegateHangs:
		networks += "," + NetHang
	case PluginKilled:
		killer = &killingExec{delay: time.Duration(rand.Int64N(int64(c.addTypical)*3/2 + 1))}
		k.Exec = killer
	}
	if c.fault != "" {
		c.res.count(c.fault)
	}
	pod, err := c.createPod(ctx, networks)
	if err != nil {
		c.res.fail("%s: %v", c.name, err)
		return 0, false
	}
	defer c.deletePod(ctx, pod)

	mark := c.dis.mark()
	t0 := time.Now()
	_, addErr := k.Add(ctx, pod)
	addDur := time.Since(t0)
	// Whatever the ADD left pinned, failed or not, is the campaign's to account for.
	if err := c.e.BPF.Record(); err != nil {
		c.res.fail("%s: record BPF objects: %v", c.name, err)
	}
	quiet := c.dis.quiet(mark)
	switch {
	case c.fault == DelegateFails || c.fault == DelegateHangs:
		if addErr == nil {
			c.res.fail("%s (%s): ADD succeeded", c.name, c.fault)
		} else if quiet && !strings.Contains(addErr.Error(), map[Fault]string{DelegateFails: NetBroken, DelegateHangs: NetHang}[c.fault]) {
			c.res.fail("%s (%s): ADD error does not name the network: %v", c.name, c.fault, addErr)
		}
	case c.fault == PluginKilled:
		// Killed or not (the delay may outlast the ADD), DEL must clean up.
	case addErr != nil && quiet:
		c.res.fail("%s: ADD: %v", c.name, addErr)
	case addErr != nil:
		c.res.mu.Lock()
		c.res.Tolerated++
		c.res.mu.Unlock()
	default:
		if err := checkInterfaces(pod.NS, "eth0", "net1", "net2"); err != nil {
			c.res.fail("%s: after ADD: %v", c.name, err)
		}
	}

	switch c.fault {
	case NetnsGone:
		if err := pod.Remove(); err != nil {
			c.res.fail("%s: remove netns: %v", c.name, err)
		}
	case PinsRemoved:
		if dir, err := c.e.Layout.Dir(pod.ContainerID); err == nil {
			if err := os.RemoveAll(dir); err != nil {
				c.res.fail("%s: remove pins: %v", c.name, err)
			}
		}
	}
	k.Exec = nil // the runtime's DEL is a plain one
	t0 = time.Now()
	delErr := k.Del(ctx, pod)
	delDur := time.Since(t0)
	for try := 0; delErr != nil && try < 3; try++ {
		c.res.fail("%s (%s): DEL: %v", c.name, c.fault, delErr)
		time.Sleep(time.Second)
		delErr = k.Del(ctx, pod)
	}
	if err := pod.Remove(); err != nil {
		c.res.fail("%s: remove netns: %v", c.name, err)
	}
	plain := c.fault == "" && addErr == nil && quiet && c.dis.quiet(mark)
	if plain {
		c.res.mu.Lock()
		c.res.Add = append(c.res.Add, addDur)
		c.res.Del = append(c.res.Del, delDur)
		c.res.mu.Unlock()
	}
	return addDur, plain
}

// createPod creates the pod object and its sandbox, retrying while the apiserver is away.
func (c *cycle) createPod(ctx context.Context, networks string) (*emulation.Pod, error) {
	obj := c.e.Kubelets[c.node].Bind(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: c.name, Namespace: c.e.Namespace,
		Annotations: map[string]string{k8s.NetworksAnnotation: networks}}})
	var created *corev1.Pod
	err := retryAPI(ctx, func() (err error) {
		created, err = c.e.Cluster.Client().CoreV1().Pods(c.e.Namespace).Create(ctx, obj, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) { // created just before a connection broke
			created, err = c.e.Cluster.Client().CoreV1().Pods(c.e.Namespace).Get(ctx, c.name, metav1.GetOptions{})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create pod: %w", err)
	}
	p, err := emulation.NewPod(c.e.Prefix+"p", c.name, c.node)
	if err != nil {
		return nil, err
	}
	p.Namespace, p.UID = created.Namespace, string(created.UID)
	if err := p.NS.Do(func(ns.NetNS) error { return noDAD() }); err != nil {
		return nil, errors.Join(err, p.Remove())
	}
	return p, nil
}

// noDAD turns IPv6 duplicate address detection off in the current namespace (the pod's).
// The delegates wait for DAD to finish, a second or more per ADD that says nothing about
// Steer and would make the campaign ten times longer.
func noDAD() error {
	for _, dev := range []string{"all", "default"} {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+dev+"/accept_dad", []byte("0"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (c *cycle) deletePod(ctx context.Context, p *emulation.Pod) {
	err := retryAPI(ctx, func() error {
		err := c.e.Cluster.Client().CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	if err != nil {
		c.res.fail("%s: delete pod: %v", c.name, err)
	}
}

// retryAPI retries f for up to two minutes: long enough for an apiserver restart.
func retryAPI(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkInterfaces checks that the pod has its interfaces.
func checkInterfaces(n ns.NetNS, names ...string) error {
	return n.Do(func(ns.NetNS) error {
		var errs []error
		for _, name := range names {
			if _, err := netlink.LinkByName(name); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		return errors.Join(errs...)
	})
}

// disrupt injects a node-wide fault and waits until the node is back.
func disrupt(ctx context.Context, e *Env, f Fault, dis *disruption, log func(string, ...any)) error {
	dis.begin()
	// Clients reconnect and caches resync for a moment after the component is back.
	defer func() { time.Sleep(3 * time.Second); dis.end() }()
	if log != nil {
		log("injecting: %s", f)
	}
	switch f {
	case APIServerDown:
		if err := e.Cluster.StopAPIServer(); err != nil {
			return err
		}
		time.Sleep(5 * time.Second)
		return e.Cluster.StartAPIServer(ctx)
	case SteerdRestarted:
		if e.Daemons[0] == nil {
			return errors.New("no steerd on node 0")
		}
		if err := e.Daemons[0].Kill(); err != nil {
			return err
		}
		time.Sleep(time.Second)
		return e.StartDaemon(ctx, 0)
	}
	return fmt.Errorf("unknown fault %q", f)
}
