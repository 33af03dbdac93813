// Package cni benchmarks the steer plugin against its own delegates: ADD and DEL latency
// (p50, p99) of pods with 0 to 3 secondary macvlan networks through steer, and of the same
// delegate configurations run directly through libcni, so Steer's own overhead shows as a
// number. It needs root, the local cluster binaries and the reference plugins (make deps):
//
//	go test -run '^$' -bench . -benchtime 1x ./benchmarks/cni/ [-args -iterations 50]
//
// Both paths run from inside a node network namespace; steer reaches the apiserver through
// the harness's loopback proxy (see package cninode), which adds a TLS hop a node would
// not have, so the overhead measured is, if anything, too high.
package cni
