// Package cni benchmarks the steer plugin against its own delegates: ADD and DEL latency
// (p50, p99) of pods with 0 to 3 secondary macvlan networks through steer, and of the same
// delegate configurations run directly through libcni, so Steer's own overhead shows as a
// number. Multus' thin plugin (hack/install-multus.sh) runs the same pods with the same
// delegates, NADs and kubeconfig, interleaved with steer, and each steer row gives its overhead
// as a multiple of Multus' for the same number of networks. It needs root, the local cluster
// binaries, the reference plugins and Multus (make deps):
//
//	go test -run '^$' -bench . -benchtime 1x ./benchmarks/cni/ [-args -iterations 50]
//
// All paths run from inside a node network namespace; steer and Multus reach the apiserver
// through the harness's loopback proxy (see package cninode), which adds a TLS hop a node
// would not have, so their overheads measured are, if anything, too high.
package cni
