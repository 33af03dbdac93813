// Package engine implements the CNI verbs of the steer plugin: it resolves a pod's networks
// (the cluster network, default networks and the k8s.v1.cni.cncf.io/networks selection),
// runs their delegate plugins through package delegate, hands the attachments to the
// steering dataplane and writes the pod's network-status. The same Engine serves the plugin
// in-process (thin mode) and, later, steerd (thick mode): it holds no globals, logs through
// the *slog.Logger it is given, and reads pods and NetworkAttachmentDefinitions through the
// PodSource and NADSource interfaces (in thin mode steerd's answers, or client-go when steerd
// does not answer; informer caches in steerd).
//
// # ADD
//
// Everything that can be checked is checked before the first delegate runs: the
// configuration, CNI_ARGS, the pod (one bounded Get), the selection annotation, every NAD
// and its config, namespace isolation, capabilities, interface names (unique, valid, not
// already present in the pod netns), and that every plugin binary exists. The apiserver
// round trips overlap where they can: the cluster and default networks resolve while the
// pod is fetched, the selected NADs are fetched concurrently, and the network-status is
// written while the dataplane attaches. Then the
// delegates run in order: the cluster network on CNI_IFNAME, the default networks on
// net1..netN, the selected networks. Before each delegate runs, the per-container cache
// (<cniDir>/<containerID>.json, replaced atomically) already lists it, so a plugin killed
// half-way can still be deleted. On any failure everything already attached is deleted in
// reverse (including the delegate that failed, whose DEL releases what it half did), the
// steering is detached, and the cache is removed; if that clean-up fails too, the cache is
// kept so the runtime's DEL can finish it, and the error says so.
//
// A selection element asking for a capability (ips, mac, portMappings, bandwidth) that no
// plugin of its network declares is passed on as Multus passes it (see package netconf), with
// a warning in the log and a Warning event (UndeclaredCapability) on the pod, so the operator
// sees it in kubectl describe; strictCapabilities refuses it instead. With
// auxiliaryCNIChainName, Multus' auxiliary chain runs last (see package netconf), and DEL and
// CHECK find it in the cache like any other network.
//
// A selection element with "default-route" moves the pod's default route of that address
// family to its interface; the other attachments lose theirs, in the pod and in their
// results. (Multus also removes the default route of the family nobody asked for; we
// leave it.) An empty "default-route" list changes nothing.
//
// The network-status annotation is written last, with one merge patch of the pod's status
// subresource. Failing to write it fails the ADD and rolls everything back, as in Multus:
// a pod whose network-status silently lacks its networks is worse than a retried sandbox.
// The result returned to the runtime is the cluster network's, with the pod interfaces of
// every other attachment appended to "interfaces" (their IPs are not added, so runtimes
// that take the pod IP from the result keep taking the cluster network's).
//
// # DEL, CHECK, GC, STATUS
//
// DEL needs nothing but the cache: the apiserver may be down, the pod gone, the netns gone
// (CNI_NETNS is passed on as given). It detaches steering first, then runs DEL of every
// cached attachment in reverse with the delegate configuration bytes ADD used, going on past
// failures and reporting them together. With neither Steer's cache nor Multus' (below), DEL
// does what Multus' DEL does without its cache: it reads the pod (same UID) from the
// apiserver, resolves its networks as ADD would (cluster and default networks, the
// default-network and selection annotations, their NADs) and runs each DEL, last to first,
// on the names ADD gives them, with libcni's results from Multus' cniDir when Multus cached
// the cluster network's there. Best effort: the lookups get 3 s (apiTimeout if shorter); a
// pod that is gone (or another UID) or an unreachable apiserver means nothing to delete; a selection that no longer resolves leaves
// the cluster and default networks to delete; failures are logged and DEL succeeds, since a
// retry would know no more. (Multus fails such a DEL when the cluster network does not
// resolve, blocking the sandbox's removal.)
// The cache is removed afterwards, unless retryDeleteOnError is set and a delegate failed:
// then it keeps the failed attachments for the runtime's next DEL (as Multus does). While
// the netns still exists, the network-status is removed, best effort and briefly bounded.
//
// CHECK runs every cached attachment's CHECK (delegates older than CNI 0.4.0 have none).
//
// Pods that Multus attached before Steer replaced it have no Steer cache. DEL, CHECK and GC
// then read Multus' file for the container (multusCNIDir/<containerID>, the delegate list
// Multus v3/v4 save at ADD) and run it as Multus' DEL would: last delegate to first, the first
// on CNI_IFNAME, the others on their requested name or net<index>, Multus' CNI_ARGS order,
// the runtime's runtimeConfig plus the cached ips, mac, infinibandGUID and deviceID on all but
// the first, and libcni's cache in multusCNIDir (where Multus' results, the prevResult, are).
// For a conflist file, DEL runs the list Multus' ADD ran (its cached libcni list), not the
// re-encoding Multus' own DEL uses and fails with (ipam.ranges is lost).
// The file goes afterwards, or stays whole under retryDeleteOnError when a delegate failed.
// A file that is not such a list is logged and kept, and DEL succeeds (as Multus' does).
// No steering is detached or checked: Multus set none up. GC keeps such a pod when the runtime
// lists its container ID (Multus caches no CNI_IFNAME) and deletes it otherwise.
//
// GC gets the runtime's valid attachments. Every cached container that is not valid is
// deleted as DEL would (an ADD in progress, i.e. an incomplete cache younger than
// addGrace, is left alone). Then GC goes to the cluster network and to every delegate
// configuration found in the caches, each with the valid attachments of its network name,
// so IPAM that implements GC frees addresses of pods that vanished without a DEL and without
// a cache. When a valid container has no cache, its secondary attachments are unknown and
// the secondary networks get no GC (it would free their addresses); the cluster network
// still does, since its attachment is the runtime's own (containerID, CNI_IFNAME).
//
// STATUS fails with code 50 unless the readiness indicator file exists (when configured) and
// the cluster network's delegate reports ready (delegates older than CNI 1.1.0 are assumed
// ready).
//
// # Errors
//
// Errors are *types.Error so the runtime sees a code: 6 and 7 for configuration and
// annotation problems (from package netconf, with the key or element named), 7 for an unknown
// or forbidden NetworkAttachmentDefinition and a missing plugin binary, 3 for a pod that does
// not exist (or no longer has CNI_ARGS' UID), 11 when the apiserver times out or cannot be
// reached, 50 from STATUS, and a delegate's own code for a delegate failure. Messages start
// with the pod and, for a network, name it.
//
// # Cluster network resolution
//
// clusterNetwork, each defaultNetworks entry and the v1.multus-cni.io/default-network
// annotation resolve as in Multus: a reference without '/' is a NetworkAttachmentDefinition
// in steerNamespace, else a configuration "name" in confDir; a reference with '/' is a
// directory (its first configuration file) or a file path. The annotation may also say
// "namespace/name" (a NAD in that namespace); under namespaceIsolation either form must name
// the pod's own namespace or a global one (a bare name counts as steerNamespace, so it is
// refused too: Multus v4 checks neither form). A pod can never point it at a path on the node.
// The annotation replaces delegates[0] as well as clusterNetwork; delegates[1:] stay, as in
// Multus.
package engine
