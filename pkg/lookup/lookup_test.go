package lookup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/steernet/steer/pkg/k8s"
)

// fakeSource answers from maps and records what it was asked to write.
type fakeSource struct {
	pods     map[string]*k8s.Pod
	nads     map[string]*k8s.NetworkAttachmentDefinition
	err      error // returned by every call when set
	statuses []k8s.NetworkStatus
	uid      string
	event    string
}

func (f *fakeSource) pod(_ context.Context, namespace, name string) (*k8s.Pod, error) {
	if f.err != nil {
		return nil, f.err
	}
	if p := f.pods[namespace+"/"+name]; p != nil {
		return p, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "pods"}, name)
}

func (f *fakeSource) nad(_ context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	if f.err != nil {
		return nil, f.err
	}
	if n := f.nads[namespace+"/"+name]; n != nil {
		return n, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "k8s.cni.cncf.io", Resource: "network-attachment-definitions"}, name)
}

// source is f as the Source steerd answers from.
func (f *fakeSource) source() Source {
	return Source{Pods: fakePods{f}, NADs: fakeNADs{f}, Status: f, Events: f}
}

type fakePods struct{ f *fakeSource }

func (p fakePods) Get(ctx context.Context, namespace, name string) (*k8s.Pod, error) {
	return p.f.pod(ctx, namespace, name)
}

type fakeNADs struct{ f *fakeSource }

func (n fakeNADs) Get(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	return n.f.nad(ctx, namespace, name)
}

func (f *fakeSource) SetNetworkStatus(_ context.Context, _, _, uid string, st []k8s.NetworkStatus) error {
	f.uid, f.statuses = uid, st
	return f.err
}

func (f *fakeSource) Warn(_ context.Context, pod *k8s.Pod, component, reason, message string) error {
	f.event = pod.Namespace + "/" + pod.Name + " " + pod.UID + " " + component + " " + reason + " " + message
	return f.err
}

// serve answers the calls of a client on a socket in a temporary directory with Serve, until
// the test ends.
func serve(t *testing.T, src Source, done func(string, error)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), SocketName)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, src, done) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

// answerWith serves every connection with f: what a socket that is not steerd's does.
func answerWith(t *testing.T, f func(net.Conn)) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), SocketName)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); f(c) }()
		}
	}()
	return path
}

func TestLookupsRoundTrip(t *testing.T) {
	pod := &k8s.Pod{Namespace: "ns-1", Name: "web-0", UID: "u-1", Annotations: map[string]string{k8s.NetworksAnnotation: "dmz"}}
	nad := &k8s.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: "ns-1", Name: "dmz"},
		Spec: k8s.NetworkAttachmentDefinitionSpec{Config: `{"cniVersion":"1.1.0","type":"macvlan"}`}}
	src := &fakeSource{pods: map[string]*k8s.Pod{"ns-1/web-0": pod}, nads: map[string]*k8s.NetworkAttachmentDefinition{"ns-1/dmz": nad}}
	var mu sync.Mutex
	var answered []string
	c := NewClient(serve(t, src.source(), func(kind string, err error) {
		mu.Lock()
		defer mu.Unlock()
		answered = append(answered, fmt.Sprint(kind, " ", err))
	}))
	defer c.Close()
	ctx := context.Background()

	got, err := c.Pod(ctx, "ns-1", "web-0")
	if err != nil || !reflect.DeepEqual(got, pod) {
		t.Fatalf("Pod = %+v, %v; want %+v", got, err, pod)
	}
	gotNAD, err := c.NAD(ctx, "ns-1", "dmz")
	if err != nil || gotNAD.Name != "dmz" || gotNAD.Namespace != "ns-1" || gotNAD.Spec.Config != nad.Spec.Config {
		t.Fatalf("NAD = %+v, %v", gotNAD, err)
	}
	st := []k8s.NetworkStatus{{Name: "cbr0", Interface: "eth0", IPs: []string{"192.0.2.7"}, Default: true}}
	if err := c.SetNetworkStatus(ctx, "ns-1", "web-0", "u-1", st); err != nil || src.uid != "u-1" || !reflect.DeepEqual(src.statuses, st) {
		t.Fatalf("SetNetworkStatus: %v; steerd got uid %q, %+v", err, src.uid, src.statuses)
	}
	if err := c.SetNetworkStatus(ctx, "ns-1", "web-0", "", nil); err != nil || src.statuses != nil {
		t.Fatalf("removing the status: %v; steerd got %+v", err, src.statuses)
	}
	if err := c.Warn(ctx, pod, "steer", "Why", "because"); err != nil || src.event != "ns-1/web-0 u-1 steer Why because" {
		t.Fatalf("Warn: %v; steerd got %q", err, src.event)
	}
	if _, err := c.Pod(ctx, "ns-1", "gone"); err == nil {
		t.Fatal("a missing pod was found")
	}
	want := []string{"pod <nil>", "nad <nil>", "network-status <nil>", "network-status <nil>", "event <nil>", `pod pods "gone" not found`}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(answered, want) {
		t.Errorf("steerd reported %q, want %q", answered, want)
	}
}

// The apiserver's answers reach the plugin as its own client would return them, so the engine
// tells a missing pod from an apiserver that is down as it does without steerd.
func TestLookupsKeepTheAPIStatus(t *testing.T) {
	src := &fakeSource{}
	c := NewClient(serve(t, src.source(), nil))
	defer c.Close()
	ctx := context.Background()

	if _, err := c.Pod(ctx, "ns-1", "gone"); !apierrors.IsNotFound(err) || errors.Is(err, ErrUnavailable) {
		t.Errorf("missing pod: %v, want NotFound", err)
	}
	if _, err := c.NAD(ctx, "ns-1", "gone"); !apierrors.IsNotFound(err) {
		t.Errorf("missing NAD: %v, want NotFound", err)
	}
	src.err = apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "web-0", errors.New("no"))
	if _, err := c.Pod(ctx, "ns-1", "web-0"); !apierrors.IsForbidden(err) {
		t.Errorf("forbidden: %v", err)
	}
	src.err = apierrors.NewTimeoutError("slow", 1)
	if err := c.SetNetworkStatus(ctx, "ns-1", "web-0", "u", nil); !apierrors.IsTimeout(err) {
		t.Errorf("timeout: %v", err)
	}
	src.err = context.DeadlineExceeded // steerd's own call ran out of time
	if _, err := c.Pod(ctx, "ns-1", "web-0"); !apierrors.IsTimeout(err) || errors.Is(err, ErrUnavailable) {
		t.Errorf("steerd's timeout: %v, want a Timeout", err)
	}
	src.err = errors.New("informer broken") // not an apiserver status
	if _, err := c.Pod(ctx, "ns-1", "web-0"); !apierrors.IsInternalError(err) || errors.Is(err, ErrUnavailable) {
		t.Errorf("steerd's error: %v, want an InternalError", err)
	}
}

// What is not steerd answering is ErrUnavailable: the plugin then asks the apiserver.
func TestLookupsUnavailable(t *testing.T) {
	ctx := context.Background()
	c := NewClient(filepath.Join(t.TempDir(), SocketName)) // nobody there
	if _, err := c.Pod(ctx, "ns-1", "web-0"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("no socket: %v", err)
	}
	for what, f := range map[string]func(net.Conn){
		"a socket closed at once": func(net.Conn) {},
		"an HTTP server": func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\r\n"))
		},
		"JSON without an answer": func(c net.Conn) { _, _ = c.Write([]byte(`[1,2]` + "\n")) },
		"an error without a code": func(c net.Conn) {
			_, _ = c.Write([]byte(`{"error":{"message":"?"}}` + "\n"))
		},
		"an answer without the pod": func(c net.Conn) { _, _ = c.Write([]byte(`{}` + "\n")) },
	} {
		c := NewClient(answerWith(t, func(c net.Conn) {
			_, _ = bufio.NewReader(c).ReadString('\n')
			f(c)
		}))
		if _, err := c.Pod(ctx, "ns-1", "web-0"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want ErrUnavailable", what, err)
		}
		c.Close()
	}
	// A canceled call is the caller's, not a missing steerd.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	c = NewClient(serve(t, (&fakeSource{}).source(), nil))
	if _, err := c.Pod(cctx, "ns-1", "web-0"); errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

// steerd keeps to the time the plugin has left: a call the plugin gave up on does not go on.
func TestLookupsKeepToTheDeadline(t *testing.T) {
	gaveUp := make(chan time.Duration, 1)
	src := (&fakeSource{}).source()
	src.Pods = blockingPods{gaveUp: gaveUp}
	c := NewClient(serve(t, src, nil))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	// Whichever side's clock fires first: the plugin's own deadline, or steerd's Timeout.
	if _, err := c.Pod(ctx, "ns-1", "web-0"); !errors.Is(err, context.DeadlineExceeded) && !apierrors.IsTimeout(err) {
		t.Errorf("Pod past its deadline: %v", err)
	}
	select {
	case d := <-gaveUp:
		if d > 5*time.Second {
			t.Errorf("steerd gave up after %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("steerd still works on the call %v after the plugin gave up", time.Since(start))
	}
}

// blockingPods answers nothing until its caller gives up.
type blockingPods struct{ gaveUp chan time.Duration }

func (b blockingPods) Get(ctx context.Context, _, _ string) (*k8s.Pod, error) {
	start := time.Now()
	<-ctx.Done()
	b.gaveUp <- time.Since(start)
	return nil, ctx.Err()
}

// A bad line gets a BadRequest and the connection goes on; an unknown call is not reported.
func TestLookupsBadCalls(t *testing.T) {
	var reported []string
	var mu sync.Mutex
	path := serve(t, (&fakeSource{pods: map[string]*k8s.Pod{"ns-1/web-0": {Namespace: "ns-1", Name: "web-0"}}}).source(),
		func(kind string, _ error) { mu.Lock(); defer mu.Unlock(); reported = append(reported, kind) })
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	in := bufio.NewReader(conn)
	for _, line := range []string{"not json", `{"kind":"secrets","namespace":"ns-1","name":"x"}`, `{"kind":"event","namespace":"ns-1","name":"web-0"}`} {
		if _, err := conn.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		got, err := in.ReadString('\n')
		var a answer
		if err == nil {
			err = json.Unmarshal([]byte(got), &a)
		}
		if err != nil || a.Error == nil || a.Error.Reason != metav1.StatusReasonBadRequest {
			t.Errorf("%s: %q, %v; want a BadRequest", line, got, err)
		}
	}
	c := &Client{path: path}
	if pod, err := c.Pod(context.Background(), "ns-1", "web-0"); err != nil || pod.Name != "web-0" {
		t.Errorf("a good call after bad ones: %+v, %v", pod, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(reported, []string{KindEvent, KindPod}) {
		t.Errorf("reported %v, want the event and the pod only", reported)
	}
}
