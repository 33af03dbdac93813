package cninode

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Fault decides what the proxy does with a request: Pass, Hang (until the client gives up),
// or an HTTP status code to answer with.
type Fault func(*http.Request) int

// Fault outcomes besides a status code.
const (
	Pass = 0
	Hang = -1
)

// Rewrite returns the body the client gets instead of the apiserver's (always JSON: the
// proxy asks for it uncompressed).
type Rewrite func(r *http.Request, body []byte) []byte

// APIProxy is a TLS reverse proxy listening on 127.0.0.1 inside a node namespace and
// forwarding to an apiserver on the real host's loopback. Faults can be injected, and
// responses rewritten (to serve what the apiserver would refuse to store).
type APIProxy struct {
	srv     *httptest.Server
	token   string
	fault   atomic.Pointer[Fault]
	rewrite atomic.Pointer[Rewrite]
}

// StartAPIProxy starts a proxy in host to the apiserver of cfg; it stops when the test ends.
func StartAPIProxy(t testing.TB, host ns.NetNS, cfg *rest.Config) *APIProxy {
	t.Helper()
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &APIProxy{token: cfg.BearerToken}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("Accept-Encoding") // bodies stay plain, for Rewrite
		},
		Transport: transport,
		ErrorLog:  log.New(io.Discard, "", 0), // an upstream that is down is what some tests want
	}
	rp.ModifyResponse = func(resp *http.Response) error {
		f := p.rewrite.Load()
		if f == nil {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		body = (*f)(resp.Request, body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := p.fault.Load(); f != nil {
			switch code := (*f)(r); {
			case code == Hang:
				<-r.Context().Done()
				return
			case code > 0:
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected fault","code":%d}`, code)
				return
			}
		}
		rp.ServeHTTP(w, r)
	})
	var ln net.Listener
	err = host.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err == nil {
			ln, err = net.Listen("tcp", "127.0.0.1:0")
		}
		return err
	})
	if err != nil {
		t.Fatalf("proxy listener in the node netns: %v", err)
	}
	p.srv = httptest.NewUnstartedServer(handler)
	p.srv.Listener = ln
	p.srv.StartTLS()
	t.Cleanup(p.Close)
	return p
}

// SetFault makes the proxy apply f to every request; nil passes everything.
func (p *APIProxy) SetFault(f Fault) {
	if f == nil {
		p.fault.Store(nil)
		return
	}
	p.fault.Store(&f)
}

// SetRewrite makes the proxy pass every response body through f; nil stops it.
func (p *APIProxy) SetRewrite(f Rewrite) {
	if f == nil {
		p.rewrite.Store(nil)
		return
	}
	p.rewrite.Store(&f)
}

// Close stops the proxy: its port is then closed. Idempotent.
func (p *APIProxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// URL is the proxy's https://127.0.0.1:<port>, reachable from inside the node namespace.
func (p *APIProxy) URL() string { return p.srv.URL }

// WriteKubeconfig writes a kubeconfig for the proxy into dir and returns its path.
func (p *APIProxy) WriteKubeconfig(t testing.TB, dir string) string {
	t.Helper()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	return WriteKubeconfig(t, filepath.Join(dir, "steer.kubeconfig"), p.srv.URL, ca, p.token)
}

// WriteKubeconfig writes a single-context kubeconfig for server.
func WriteKubeconfig(t testing.TB, path, server string, ca []byte, token string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
