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

// BenchmarkAttachSpares measures Attach alone, as steerd runs it: on the collection the previous
// pod left loaded (made between pods, off the clock, as between two ADDs), and without.
// Interfaces' kinds are given, as steering gives them.
//
//	go test -run '^$' -bench AttachSpares -benchtime 30x ./pkg/datapath
func BenchmarkAttachSpares(b *testing.B) {
	for _, secondaries := range []int{1, 3} {
		for _, spares := range []bool{false, true} {
			b.Run(fmt.Sprintf("secondaries=%d/spares=%t", secondaries, spares), func(b *testing.B) {
				prSkipUnlessRoot(b)
				pod, peer := nstest.NewNS(b), nstest.NewNS(b)
				cfg := costConfig(1+secondaries, 0)
				for i := range cfg.Interfaces {
					l, _ := nstest.Veth(b, pod, cfg.Interfaces[i].Name, peer, fmt.Sprintf("p%d", i))
					cfg.Interfaces[i].Index, cfg.Interfaces[i].Kind = l.Attrs().Index, l.Type()
				}
				opts := Options{Layout: nstest.BPFRoot(b)}
				if spares {
					opts.Spares = &Spares{}
					b.Cleanup(opts.Spares.Close)
				}
				id := "bench" + nstest.Suffix()
				for b.Loop() {
					b.StopTimer()
					if spares {
						WaitSpare(b, opts.Spares)
					}
					b.StartTimer()
					if err := Attach(pod.Path(), id, cfg, opts); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					if err := Detach(pod.Path(), id, opts); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}
