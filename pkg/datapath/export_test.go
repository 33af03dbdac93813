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

// SpareIDs are the IDs of a ready set's maps and programs, by name in the object.
type SpareIDs struct {
	Maps     map[string]ebpf.MapID
	Programs map[string]ebpf.ProgramID
}

// WaitSpare makes s's next ready set and waits until it is ready, returning its IDs.
func WaitSpare(t testing.TB, s *Spares) SpareIDs {
	t.Helper()
	s.refill()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		r := s.ready
		ids := SpareIDs{Maps: map[string]ebpf.MapID{}, Programs: map[string]ebpf.ProgramID{}}
		if r != nil {
			for name, m := range r.maps {
				info, err := m.Info()
				if err != nil {
					s.mu.Unlock()
					t.Fatal(err)
				}
				ids.Maps[name], _ = info.ID()
			}
			for name, p := range r.programs {
				info, err := p.Info()
				if err != nil {
					s.mu.Unlock()
					t.Fatal(err)
				}
				ids.Programs[name], _ = info.ID()
			}
		}
		s.mu.Unlock()
		if r != nil {
			return ids
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no ready set after 10s")
	return SpareIDs{}
}

// IsDataSection tells the maps of the object that are not pinned.
var IsDataSection = isDataSection

// Names of the configuration maps in the object.
const (
	ConfigMap = configMap
	IfacesMap = ifacesMap
)

// FlowsMap is the name of the flow table in the object.
const FlowsMap = flowsMap

// SpareState tells whether s holds a ready set, and whether one is being made.
func SpareState(s *Spares) (ready, making bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready != nil, s.making
}

// SpoilReady freezes the interface table of s's ready set, as no set is: writing the pod's
// table into it then fails.
func SpoilReady(t testing.TB, s *Spares) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil {
		t.Fatal("no ready set")
	}
	if err := s.ready.maps[ifacesMap].Freeze(); err != nil {
		t.Fatal(err)
	}
}
