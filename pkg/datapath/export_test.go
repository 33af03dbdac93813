package datapath

import (
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
