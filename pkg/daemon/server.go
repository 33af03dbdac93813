// Package daemon serves the steer plugin over unix sockets: in thick mode the engine runs in
// steerd with an informer cache, so ADD needs no apiserver round trip for pods it has seen; in
// thin mode the same cache answers the plugin's lookups. Concurrency is bounded (a burst of pod
// starts queues instead of exhausting memory) and one container's verbs never run at once.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/cnienv"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/engine"
	"github.com/steernet/steer/pkg/lookup"
	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// Server runs CNI requests for the plugin.
type Server struct {
	log     *slog.Logger
	cache   *Cache
	metrics *metrics.Registry
	// slots bound the ADDs and CHECKs that run at once; cleanup (DEL, GC) and STATUS have
	// slots of their own, so hung ADDs never hold them up.
	slots, cleanupSlots chan struct{}
	locks               keyedMutex
	// readTimeout bounds reading a request, maxConns the connections held at once: a
	// client that sent headers and no body used to keep its connection for ever.
	readTimeout time.Duration
	maxConns    int
	// spares are the BPF maps and verified programs of the next steered pod, loaded ahead of
	// its ADD.
	spares *datapath.Spares
}

// DefaultWorkers bounds the requests that run at once; the rest wait their turn.
const DefaultWorkers = 8

// Connection limits of the socket.
const (
	defaultReadTimeout = 10 * time.Second
	defaultMaxConns    = 128
)

// NewServer returns a server answering from cache; workers bounds concurrency.
func NewServer(cache *Cache, workers int, reg *metrics.Registry, log *slog.Logger) *Server {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	return &Server{log: log, cache: cache, metrics: reg,
		slots: make(chan struct{}, workers), cleanupSlots: make(chan struct{}, workers),
		readTimeout: defaultReadTimeout, maxConns: defaultMaxConns, spares: &datapath.Spares{}}
}

// Serve listens on socket until ctx ends (see listenSocket for who may connect), and answers
// each CNI request (a JSON line, package api) with the verb's result.
func (s *Server) Serve(ctx context.Context, socket string) error {
	defer s.spares.Close()
	ln, closeSocket, err := listenSocket(socket, s.maxConns, s.log)
	if err != nil {
		return err
	}
	defer closeSocket()
	return api.Serve(ctx, ln, s.readTimeout, api.MaxRequestSize, s.handle)
}

// ServeLookups answers the thin plugin's calls (package lookup) from c on socket until ctx
// ends, with the protections of the plugin's socket, counting them in reg.
func ServeLookups(ctx context.Context, socket string, c *Cache, reg *metrics.Registry, log *slog.Logger) error {
	ln, closeSocket, err := listenSocket(socket, defaultMaxConns, log)
	if err != nil {
		return err
	}
	defer closeSocket()
	done := func(kind string, err error) {
		result := "ok"
		if err != nil {
			result = "error"
		}
		reg.Lookups.WithLabelValues(kind, result).Inc()
	}
	return lookup.Serve(ctx, ln, lookup.Source{Pods: c, NADs: c.NADs(), Status: c, Events: c}, done)
}

// listenSocket listens on a unix socket only root may use (0600, in a 0700 directory it makes,
// and peers checked with SO_PEERCRED), accepting at most maxConns connections at once. A stale
// socket left by a killed daemon is replaced. closeSocket closes the listener and removes the
// socket, unless another steerd (starting during a rolling update) has replaced it already.
func listenSocket(socket string, maxConns int, log *slog.Logger) (_ net.Listener, closeSocket func(), _ error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, nil, err
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	ul.SetUnlinkOnClose(false)
	mine, err := os.Stat(socket)
	if err == nil {
		err = os.Chmod(socket, 0o600)
	}
	if err != nil {
		ul.Close()
		_ = os.Remove(socket)
		return nil, nil, err
	}
	closeSocket = func() {
		_ = ul.Close()
		if now, err := os.Stat(socket); err == nil && os.SameFile(mine, now) {
			_ = os.Remove(socket)
		}
	}
	return newLimitListener(peerCredListener{Listener: ul, log: log}, maxConns), closeSocket, nil
}

// handle answers one request line; ctx ends when the client hangs up.
func (s *Server) handle(ctx context.Context, line []byte) any {
	var req api.Request
	if err := json.Unmarshal(line, &req); err != nil {
		return response(nil, types.NewError(types.ErrDecodingFailure, "steerd: bad request", err.Error()))
	}
	start := time.Now()
	res, err := s.run(ctx, req)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	s.metrics.Requests.WithLabelValues(verbLabel(req.Command), outcome).Observe(time.Since(start).Seconds())
	return response(res, err)
}

// verbLabel is the metric label of a command: the client chooses it, and each distinct label
// value would be a new time series for as long as steerd runs.
func verbLabel(command string) string {
	switch command {
	case "ADD", "DEL", "CHECK", "GC", "STATUS":
		return command
	}
	return "unknown"
}

// run takes the container's lock, then a worker slot, then runs the verb; it gives up
// waiting when the client does. The lock comes first so that retries of a hung ADD wait
// without holding slots other containers need.
func (s *Server) run(ctx context.Context, req api.Request) (json.RawMessage, error) {
	if req.ContainerID != "" {
		unlock, err := s.locks.lock(ctx, req.ContainerID)
		if err != nil {
			return nil, types.NewError(types.ErrTryAgainLater, "steerd: another request for the container is running", err.Error())
		}
		defer unlock()
	}
	slots := s.slots
	if req.Command == "DEL" || req.Command == "GC" || req.Command == "STATUS" {
		slots = s.cleanupSlots
	}
	select {
	case slots <- struct{}{}:
		defer func() { <-slots }()
	case <-ctx.Done():
		return nil, types.NewError(types.ErrTryAgainLater, "steerd: busy", ctx.Err().Error())
	}
	conf, err := netconf.ParseConf(req.StdinData)
	if err != nil {
		return nil, err
	}
	if err := checkNetns(&req); err != nil {
		return nil, err
	}
	log := s.log.With("verb", req.Command) // the engine adds "container"
	e := engine.New(engine.Options{
		Logger:    log,
		Pods:      s.cache,
		NADs:      s.cache.NADs(),
		Status:    s.cache,
		Events:    s.cache,
		Dataplane: steering.ForConf(conf, log, s.spares),
	})
	args := &skel.CmdArgs{ContainerID: req.ContainerID, Netns: req.Netns, IfName: req.IfName, Args: req.Args, Path: req.Path, StdinData: req.StdinData}
	switch req.Command {
	case "ADD":
		res, err := e.Add(ctx, conf, args)
		if err != nil {
			return nil, err
		}
		return encodeResult(res, conf.CNIVersion)
	case "DEL":
		return nil, e.Del(ctx, conf, args)
	case "CHECK":
		return nil, e.Check(ctx, conf, args)
	case "GC":
		return nil, e.GC(ctx, conf, args)
	case "STATUS":
		return nil, e.Status(ctx, conf, args)
	}
	return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("steerd: unknown command %q", req.Command), "")
}

// checkNetns refuses the daemon's own (the host's) network namespace before ADD or CHECK
// touches it; DEL then runs as for a vanished netns, so delegates leave the host's
// interfaces alone and the runtime's DEL succeeds.
func checkNetns(req *api.Request) error {
	switch {
	case req.Command == "DEL" && cnienv.IsOwnNetns(req.Netns):
		req.Netns = ""
	case req.Command == "ADD" || req.Command == "CHECK":
		if err := cnienv.ValidateIdentity(req.ContainerID, req.IfName); err != nil {
			return err // the engine's own check, first, as in the plugin
		}
		if req.Netns != "" {
			return cnienv.CheckNetns(req.Netns)
		}
	}
	return nil
}

func encodeResult(res types.Result, version string) (json.RawMessage, error) {
	if version != "" {
		var err error
		if res, err = res.GetAsVersion(version); err != nil {
			return nil, err
		}
	}
	return json.Marshal(res)
}

func response(res json.RawMessage, err error) api.Response {
	out := api.Response{Result: res}
	if err != nil {
		var cniErr *types.Error
		if !errors.As(err, &cniErr) || cniErr.Code == 0 {
			cniErr = types.NewError(types.ErrInternal, err.Error(), "") // 0 is success to a runtime
		}
		out.Error = cniErr
	}
	return out
}
