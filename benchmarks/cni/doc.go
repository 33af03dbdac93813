// Package cni benchmarks the steer plugin against its own delegates and against Multus v4.3.0.
//
// BenchmarkCNI: ADD and DEL latency (p50, p99) of pods with 0 to 3 secondary macvlan networks
// through steer, thin (the plugin does the work) and thick (the plugin hands it to steerd), and
// of the same delegate configurations run directly through libcni, so Steer's own overhead
// shows as a number. Multus' thin plugin and its thick plugin (multus-shim and multus-daemon;
// hack/install-multus.sh builds all three) run the same pods with the same delegates, NADs and
// apiserver, interleaved with steer, and each steer row gives its overhead as a multiple of
// Multus' in the same mode for the same number of networks. The pods of an iteration are
// created before it runs, so the daemons' informers have them when ADD comes, as on a node.
//
// BenchmarkSteerdScale: steerd with 250 steered pods attached (RSS, goal ≤ 40 MiB), then 100
// ADDs sent at once against 100 sent one after the other (goal: no slower).
//
// They need root, the local cluster binaries, the reference plugins and Multus (make deps):
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 40m ./benchmarks/cni/ [-args -iterations 30 -scale-pods 250 -burst 100]
//
// All paths run from inside a node network namespace; steer, steerd and Multus reach the
// apiserver through the harness's loopback proxy (see package cninode), which adds a TLS hop a
// node would not have, so their overheads measured are, if anything, too high.
package cni
