// Package node benchmarks pod start and deletion on a real node (package realnode: kubelet
// and containerd, the local apiserver), Steer against Multus v4.3.0 under the same kubelet and
// containerd, in the same run, pod after pod.
//
// Peers, each the node's network in turn (its config first in /etc/cni/net.d, as its install
// writes it; containerd reloads it before the next pod):
//   - cluster: the cluster network's bridge conflist alone, no meta plugin: the baseline;
//   - steer-thick: Steer's DaemonSet (the kustomize manifests, steerd's config as it writes it:
//     steer-shim with steerd's socket);
//   - steer-thin: the same config without socketPath, naming the steer plugin, as the chart's
//     mode: thin renders it;
//   - multus-thin: Multus' thin plugin, 00-multus.conf with its kubeconfig and RBAC as its
//     manifests give them; the cluster network as a directory (a conflist delegate breaks its
//     DEL);
//   - multus-thick: multus-shim and multus-daemon ("auto"), the daemon a host process in the
//     node's network namespace.
//
// Rows: 0, 1 and 2 secondaries (macvlans on the DMZ uplink lan0). For each pod: CNI ADD and DEL
// as containerd times them around its call of the network plugin (its metrics), create to
// Ready through the apiserver, and delete to the pod gone with its sandbox stopped.
//
// BenchmarkNode is the measurement (`make bench`, section node). It is not part of `make test`:
// even one pod per row and peer takes about two minutes with the node's set-up (`-pods 1` is
// the smoke run; `make bench BENCH_FLAGS='-quick -sections node'` runs two). It needs root,
// `make deps` and `make image`:
//
//	go test -run '^$' -bench Node -benchtime 1x -timeout 90m ./benchmarks/node/ -args -pods 20 [-out node.md] [-peers steer-thin,multus-thin]
package node
