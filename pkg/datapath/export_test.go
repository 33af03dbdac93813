package datapath

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// StopUpgradeAt makes Upgrade return, as a killed process would stop, right after the step
// named step ("loaded", "ingress", "egress", "xdp", "pin <name>"); n-th occurrence, from 1.
// It returns the function that undoes it.
func StopUpgradeAt(step string, n int, err error) (undo func()) {
	seen := 0
	upgradeStep = func(s string) error {
		if s == step {
			if seen++; seen == n {
				return err
			}
		}
		return nil
	}
	return func() { upgradeStep = func(string) error { return nil } }
}

// Refused returns a copy of o whose program name the verifier refuses (it reads R0 unset).
func Refused(o *Object, name string) *Object {
	spec := o.spec.Copy()
	spec.Programs[name].Instructions = asm.Instructions{asm.Return()}
	return &Object{spec: spec, Version: Version{Layout: o.Version.Layout, Object: o.Version.Object ^ 1}}
}

// WaitSpare makes s's next set of maps and waits until it is ready, returning the maps' IDs by
// map name.
func WaitSpare(t testing.TB, s *Spares) map[string]ebpf.MapID {
	t.Helper()
	s.refill()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		maps := s.maps
		ids := map[string]ebpf.MapID{}
		for name, m := range maps {
			info, err := m.Info()
			if err != nil {
				s.mu.Unlock()
				t.Fatal(err)
			}
			ids[name], _ = info.ID()
		}
		s.mu.Unlock()
		if maps != nil {
			return ids
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no spare maps after 10s")
	return nil
}

// FlowsMap is the name of the flow table in the object.
const FlowsMap = flowsMap

// SpareState tells whether s holds a ready set of maps, and whether one is being made.
func SpareState(s *Spares) (ready, making bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maps != nil, s.making
}
