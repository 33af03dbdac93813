package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/daemon"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/install"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/lookup"
	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/netconf"
)

type runFlags struct {
	installFlags
	metricsAddr string
	syncEvery   time.Duration
	gcEvery     time.Duration
	socket      string
	nodeName    string
	kubeconfig  string
	workers     int
	readySets   int
	lookups     bool
	services    serviceFlags
}

func runDaemon(ctx context.Context, log *slog.Logger, args []string) error {
	var f runFlags
	fs := flag.NewFlagSet("steerd run", flag.ExitOnError)
	f.installFlags.register(fs)
	fs.StringVar(&f.metricsAddr, "metrics-addr", ":9465", "address for /metrics, /healthz and /readyz")
	fs.DurationVar(&f.syncEvery, "sync-interval", 5*time.Second, "how often to check the primary CNI config and the token")
	fs.DurationVar(&f.gcEvery, "gc-interval", time.Minute, "how often to collect the pins of pods that are gone")
	fs.StringVar(&f.socket, "socket", "", "serve the plugin on this unix socket (thick mode), e.g. "+api.DefaultSocket)
	fs.StringVar(&f.nodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name: the daemon caches only its pods")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for thick mode; empty: in-cluster service account")
	fs.IntVar(&f.workers, "workers", daemon.DefaultWorkers, "CNI requests served at once in thick mode")
	fs.IntVar(&f.readySets, "ready-sets", -1, fmt.Sprintf("collections kept loaded ahead for the thin plugin's ADDs; -1: %d in thin mode with steering on, else 0", datapath.ReadySets))
	fs.BoolVar(&f.lookups, "lookups", true, "answer the thin plugin's pod and NAD lookups from the informer cache, on "+lookup.SocketName+" in its cniDir")
	f.services.register(fs)
	_ = fs.Parse(args)
	conf, err := f.config()
	if err != nil {
		return err
	}

	layout := bpffs.Layout{Root: f.bpffsRoot}
	if err := layout.EnsureMounted(); err != nil {
		return err
	}
	// Pins that exist are adopted: the programs keep running across restarts, and those of
	// another build are replaced in place before steerd is ready.
	ids, _ := layout.Containers()
	obj, err := datapath.Embedded()
	if err != nil {
		return err
	}
	log.Info("steerd started", "attachments", len(ids), "bpffs", layout.Root, "programs", obj.Version.String())

	var ready atomic.Bool
	reg := metrics.New(layout, log)
	up := &upgrader{layout: layout, obj: obj, cniDir: pluginCNIDir(conf.Plugin), reg: reg, log: log,
		reported: map[string]string{}}
	if cfg, err := restConfig(f.kubeconfig); err == nil {
		cfg.UserAgent = "steerd"
		up.dyn, _ = dynamic.NewForConfig(cfg)
	}
	up.run(ctx)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "CNI config not written yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	lis, err := net.Listen("tcp", f.metricsAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error {
		ready.Store(false)
		return install.Sync(ctx, conf, f.syncEvery, log, func() { ready.Store(true) })
	})
	if f.thin {
		g.Go(func() error {
			return install.SyncToken(ctx, filepath.Join(install.ServiceAccountDir, install.TokenFile),
				filepath.Join(f.confDir, "steer.d", "token"), f.syncEvery)
		})
	}
	g.Go(func() error { return collectLoop(ctx, layout, f.gcEvery, up, log) })
	if n := f.readySetCount(conf); n > 0 {
		g.Go(func() error { return readyLoop(ctx, layout, n, log) })
	}
	lookups := ""
	if f.lookups {
		lookups = lookup.SocketPath(pluginCNIDir(conf.Plugin))
	}
	switch {
	case f.socket != "":
		g.Go(func() error { return serveFromCache(ctx, f, reg, lookups, log) })
	case lookups != "":
		g.Go(func() error {
			if err := serveFromCache(ctx, f, reg, lookups, log); err != nil {
				log.Warn("the thin plugin's lookups are not answered: it asks the apiserver itself", "err", err)
			}
			return nil
		})
	}
	if f.services.enabled {
		if cfg, err := restConfig(f.kubeconfig); err != nil {
			log.Warn("Services on secondary networks are off: no apiserver to follow", "err", err)
		} else {
			s := services{flags: f.services, cfg: cfg, nodeName: f.nodeName, cniDir: pluginCNIDir(conf.Plugin),
				programmer: newServiceProgrammer(layout), reg: reg, log: log.With("part", "services")}
			g.Go(func() error { return s.run(ctx) })
		}
	}
	return g.Wait()
}

// readySetCount is how many collections to keep loaded for the thin plugin: by default some when
// steerd serves no socket (thin mode) and the plugin steers.
func (f *runFlags) readySetCount(conf install.Config) int {
	if f.readySets >= 0 {
		return f.readySets
	}
	if f.socket != "" || conf.Plugin["steering"] == false {
		return 0
	}
	return datapath.ReadySets
}

// readyLoop keeps n collections loaded ahead for the thin plugin (datapath.FillReady), looking
// four times a second for the ones ADDs took; it unpins them when steerd stops.
func readyLoop(ctx context.Context, layout bpffs.Layout, n int, log *slog.Logger) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		err := datapath.FillReady(layout, n)
		if msg := fmt.Sprint(err); err != nil && msg != last {
			log.Warn("collections for the thin plugin not kept ready: its ADDs load their own", "err", err)
		}
		last = fmt.Sprint(err)
		select {
		case <-ctx.Done():
			return os.RemoveAll(layout.ReadyDir())
		case <-tick.C:
		}
	}
}

// collectLoop removes the pins of pods whose interfaces are gone (deleted without DEL), and
// retries the upgrades that failed.
func collectLoop(ctx context.Context, layout bpffs.Layout, every time.Duration, up *upgrader, log *slog.Logger) error {
	for {
		up.run(ctx)
		removed, err := datapath.CollectDefunct(layout)
		if err != nil {
			log.Warn("pin collection", "err", err)
		}
		if len(removed) > 0 {
			log.Info("collected pins of vanished pods", "containers", removed)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

// serveFromCache starts informers for this node's pods and the NADs, then serves the plugin from
// them: its verbs on f.socket (thick mode) and its lookups on the lookups socket (empty: none).
// The lookups only make the thin plugin faster: their failure is logged, not fatal.
func serveFromCache(ctx context.Context, f runFlags, reg *metrics.Registry, lookups string, log *slog.Logger) error {
	if f.nodeName == "" {
		return errors.New("the informer cache needs -node-name (or NODE_NAME)")
	}
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	cfg.UserAgent = "steerd"
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c, err := daemon.NewCache(ctx, dyn, f.nodeName, 2*time.Minute)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	if lookups != "" {
		log.Info("answering the thin plugin's lookups", "socket", lookups, "node", f.nodeName)
		g.Go(func() error {
			if err := daemon.ServeLookups(ctx, lookups, c, reg, log); err != nil {
				log.Warn("the thin plugin's lookups are not answered: it asks the apiserver itself", "err", err)
			}
			return nil
		})
	}
	if f.socket != "" {
		log.Info("serving the plugin", "socket", f.socket, "node", f.nodeName, "workers", f.workers)
		g.Go(func() error { return daemon.NewServer(c, f.workers, reg, log).Serve(ctx, f.socket) })
	}
	return g.Wait()
}

// pluginCNIDir is the plugin's cache directory as its config sets it.
func pluginCNIDir(plugin map[string]any) string {
	if dir, ok := plugin["cniDir"].(string); ok && dir != "" {
		return dir
	}
	return netconf.DefaultCNIDir
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return rest.InClusterConfig()
	}
	return k8s.RESTConfigFromKubeconfig(kubeconfig, 30*time.Second)
}
