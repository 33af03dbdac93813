package datapath

import (
	"fmt"
	"testing"

	"github.com/steernet/steer/internal/testutil/nstest"
)

// Attach and Detach of a whole pod, the dataplane's share of a CNI ADD and DEL: the load, the
// pins and every hook (TCX on veths), for the primary and 0 to 3 pinned secondaries. What a
// secondary adds is the figure to watch (each TCX change waits for an RCU grace period).
//
//	go test -run '^$' -bench AttachDetach -benchtime 30x ./pkg/datapath
func benchmarkAttachDetach(b *testing.B, secondaries int) {
	prSkipUnlessRoot(b)
	pod, peer := nstest.NewNS(b), nstest.NewNS(b)
	cfg := costConfig(1+secondaries, 0)
	for i := range cfg.Interfaces {
		l, _ := nstest.Veth(b, pod, cfg.Interfaces[i].Name, peer, fmt.Sprintf("p%d", i))
		cfg.Interfaces[i].Index = l.Attrs().Index
	}
	opts := Options{Layout: nstest.BPFRoot(b)}
	id := "bench" + nstest.Suffix()
	for b.Loop() {
		if err := Attach(pod.Path(), id, cfg, opts); err != nil {
			b.Fatal(err)
		}
		if err := Detach(pod.Path(), id, opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAttachDetach0Secondaries(b *testing.B) { benchmarkAttachDetach(b, 0) }
func BenchmarkAttachDetach1Secondaries(b *testing.B) { benchmarkAttachDetach(b, 1) }
func BenchmarkAttachDetach2Secondaries(b *testing.B) { benchmarkAttachDetach(b, 2) }
func BenchmarkAttachDetach3Secondaries(b *testing.B) { benchmarkAttachDetach(b, 3) }
