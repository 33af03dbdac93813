// Package netconf parses and validates everything Steer reads as
// configuration: the plugin configuration (CNI stdin), the pod's network
// selection annotation, NetworkAttachmentDefinition (NAD) configurations and
// the Steer policy. It talks to no apiserver and does no I/O except reading
// CNI configuration directories and files.
//
// Delegate configurations are never decoded into structs and re-encoded: they
// stay the bytes the operator wrote, and the few edits Steer makes (a missing
// "name", args.cni) replace one JSON member in place.
//
// Errors are CNI errors (*types.Error from containernetworking/cni):
// code 6 (ErrDecodingFailure) when the input or a value does not decode,
// code 7 (ErrInvalidNetworkConfig) when a value is not acceptable. Messages
// name the key, or the element index and field. Lookups that find no file
// return an error wrapping ErrNotFound instead.
//
// # Plugin configuration
//
// The keys of the Multus thin plugin keep their meaning, so a Multus
// configuration works unchanged once "type" says "steer":
//
//	{
//	  "cniVersion": "1.0.0",
//	  "name": "steer-cni-network",
//	  "type": "steer",
//	  "kubeconfig": "/etc/cni/net.d/steer.d/steer.kubeconfig",
//	  "clusterNetwork": "flannel",
//	  "defaultNetworks": ["monitoring"],
//	  "confDir": "/etc/cni/multus/net.d",
//	  "cniDir": "/var/lib/cni/steer",
//	  "multusCNIDir": "/var/lib/cni/multus",
//	  "binDir": "/opt/cni/bin",
//	  "logFile": "/var/log/steer.log",
//	  "logLevel": "verbose",
//	  "logToStderr": true,
//	  "logOptions": {"maxAge": 5, "maxSize": 100, "maxBackups": 5, "compress": true},
//	  "auxiliaryCNIChainName": "vendor-chain",
//	  "namespaceIsolation": true,
//	  "globalNamespaces": "default,shared-nets",
//	  "systemNamespaces": ["kube-system"],
//	  "steerNamespace": "kube-system",
//	  "readinessindicatorfile": "/run/flannel/subnet.env",
//	  "retryDeleteOnError": false,
//	  "strictCapabilities": false,
//	  "capabilities": {"portMappings": true, "bandwidth": true},
//	  "socketPath": "/run/steer/steerd.sock",
//	  "steering": true,
//	  "apiTimeout": "10s",
//	  "bpffsRoot": "/sys/fs/bpf/steer"
//	}
//
// The Multus keys:
//
//   - cniVersion, name, type: the usual CNI keys.
//   - kubeconfig: kubeconfig used to reach the apiserver (thin mode).
//   - clusterNetwork: the primary network (eth0): a NAD name in
//     steerNamespace, a config "name" in confDir, a directory (its first
//     config file) or a config file path; a .conflist file gets the .conf
//     plugin files of the directory named after the list, beside it,
//     appended (libcni's subdirectory loading, as in Multus; off with
//     "loadOnlyInlinedPlugins": true in the list). Exclusive with delegates.
//   - defaultNetworks: networks (same forms) attached to every pod outside
//     systemNamespaces, after clusterNetwork and before the annotation's.
//     Only used with clusterNetwork, as in Multus.
//   - delegates: inline CNI configs (objects with "type", or "plugins"); the
//     first is the primary network, unless the pod's
//     v1.multus-cni.io/default-network annotation names another (as in
//     Multus; read only with a kubeconfig). Kept as raw bytes.
//   - confDir: where NADs without spec.config and on-disk networks are looked
//     up. Default /etc/cni/multus/net.d.
//   - cniDir: where the plugin caches delegate state for DEL. Default
//     /var/lib/cni/steer (Multus uses /var/lib/cni/multus).
//   - binDir: where delegate plugin binaries are. Default /opt/cni/bin.
//   - logFile, logLevel, logToStderr, logOptions: logging. logLevel is one
//     of debug, verbose, info, warning, error, panic (any case); another
//     string is logged as a warning and the default level (info) used, as
//     Multus keeps its default; logToStderr defaults to true, as in Multus.
//     logFile is rotated as Multus rotates it (lumberjack): logOptions
//     maxAge (days, default 5), maxSize (megabytes, default 100),
//     maxBackups (default 5), compress (gzip, default true). No logging key
//     ever fails the config: a value of the wrong type, a relative logFile,
//     a negative option is a warning in the log and the default is used (a
//     log setting must not fail every pod of the node).
//   - auxiliaryCNIChainName: Multus' auxiliary chain. After all the pod's
//     networks, one more network runs, named after the key, on interface
//     net<N> (N its position, as Multus names it): Multus' passthru plugin,
//     then the .conf plugin files, in name order, of the directory of that
//     name beside the clusterNetwork file (which must then be a path: ADD
//     fails otherwise, as in Multus). A name that is not a CNI network name,
//     an unreadable directory, a file without "type", or no plugin file at
//     all means no chain (logged). The chain is never steered; the passthru
//     binary must be in binDir or CNI_PATH (Multus' DaemonSets install it).
//   - namespaceIsolation: pods may only use NADs of their own namespace and
//     of globalNamespaces, in the selection and in the default-network
//     annotation (whose bare names are NADs of steerNamespace).
//   - globalNamespaces: comma-separated namespaces (a JSON list of strings is
//     accepted too). Default "default".
//   - systemNamespaces: namespaces whose pods get no defaultNetworks.
//     Default ["kube-system"].
//   - steerNamespace (Multus: multusNamespace): where clusterNetwork and
//     defaultNetworks NADs live. Default kube-system. Both keys may be given
//     only if they agree.
//   - readinessindicatorfile: the plugin waits for this file (written by the
//     primary CNI) before ADD.
//   - retryDeleteOnError: go on with the remaining delegates when a DEL fails.
//   - capabilities: capabilities the plugin declares to the runtime; the
//     runtime then fills runtimeConfig.
//   - runtimeConfig: filled by the runtime: portMappings, bandwidth (for the
//     primary network); other keys are kept in PluginRuntimeConfig.Raw.
//
// Steer's own keys:
//
//   - strictCapabilities: refuse (code 7) a selection element asking for a
//     capability (ips, mac, portMappings, bandwidth, infiniband-guid) that no
//     plugin of its network declares, instead of accepting it with a warning
//     as Multus does (see the selection annotation below). Default false.
//   - socketPath: absolute path of steerd's unix socket (thick mode). Empty:
//     thin mode, the plugin does all the work itself, asking the node's steerd
//     (its socket in cniDir, when it answers) for the pod and NADs instead of
//     the apiserver. With a socketPath,
//     clusterNetwork and delegates may be left to steerd.
//   - thinFallback: with a socketPath, run in-process (thin mode) when steerd
//     does not answer, instead of failing the ADD. Default false. DEL always
//     falls back: it needs only the cache.
//   - steering: global switch for eBPF steering on this node; false attaches
//     networks exactly as Multus would. Default true.
//   - apiTimeout: timeout of apiserver calls, a Go duration ("500ms", "10s").
//     Default "10s".
//   - delegateTimeout: how long one delegate network's ADD, DEL, CHECK, GC or
//     STATUS may run before its plugin is killed and the verb fails (a hung
//     IPAM must not hang the pod's sandbox forever). Default "1m".
//   - bpffsRoot: absolute path where programs and maps are pinned. Default
//     /sys/fs/bpf/steer.
//   - multusCNIDir: Multus' cniDir, where Multus cached the pods it attached
//     before Steer replaced it. DEL, CHECK and GC of a container Steer has no
//     cache for use Multus' file there, as Multus would. Default
//     /var/lib/cni/multus (Multus' default); set it to Multus' "cniDir" if
//     that was changed.
//
// Compared with Multus v4.3.0, key by key (what `steerd install` carries
// from a Multus config is in package install):
//
//   - Same: cniVersion, name, kubeconfig, clusterNetwork, defaultNetworks,
//     delegates (with the default-network annotation replacing delegates[0]),
//     confDir, binDir, namespaceIsolation, globalNamespaces,
//     systemNamespaces, multusNamespace, readinessindicatorfile,
//     retryDeleteOnError, capabilities, runtimeConfig, logLevel (an unknown
//     one a warning), logToStderr, auxiliaryCNIChainName.
//   - cniDir: Steer caches its own format in its own directory
//     (/var/lib/cni/steer); Multus' is multusCNIDir, read for the pods
//     Multus attached, so the two never mix.
//   - logOptions: honoured. Multus' thin plugin reads them but applies them
//     before it opens logFile, so its defaults (the same as Steer's) always
//     win.
//   - logFile, logOptions, logLevel, logToStderr of the wrong type: a
//     warning; Multus fails the whole config.
//   - Undeclared capabilities in a selection: accepted as in Multus, plus a
//     Warning event on the pod; strictCapabilities refuses them.
//   - "cniConf", which Multus' thin entrypoint writes but Multus never
//     reads: ignored by both.
//   - A relative path (confDir, cniDir, binDir, kubeconfig, ...) is refused:
//     Multus resolves it against the runtime's working directory.
//
// Keys match case-insensitively, as they do in Multus (encoding/json), and
// null keeps the default. Any other key is kept, raw, in Conf.Unknown, and
// the whole input in Conf.Raw.
//
// # Network selection annotation
//
// The k8s.v1.cni.cncf.io/networks pod annotation (NPWG de-facto standard
// v1.3) in comma form:
//
//	k8s.v1.cni.cncf.io/networks: macvlan-net, other-ns/dmz, mgmt@mgmt0
//
// or in JSON form, one object per network:
//
//	[
//	  {
//	    "name": "macvlan-net",
//	    "namespace": "lan",
//	    "interface": "lan0",
//	    "ips": ["192.168.10.5/24", "fd00:10::5/64"],
//	    "mac": "02:00:00:0a:00:05",
//	    "default-route": ["192.168.10.1"],
//	    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
//	    "bandwidth": {"ingressRate": 1000000, "ingressBurst": 1000000, "egressRate": 1000000, "egressBurst": 1000000},
//	    "cni-args": {"vlan": 10},
//	    "infiniband-guid": "c2:11:22:33:44:55:66:77",
//	    "deviceID": "0000:03:00.1",
//	    "steer": {"multicast": ["239.1.1.0/24"]}
//	  },
//	  {"name": "mgmt"}
//	]
//
// Element keys:
//
//   - name: the NAD's name (a lower-case DNS-1123 subdomain). Required.
//   - namespace: the NAD's namespace. Default: the pod's namespace.
//   - interface: the interface name in the pod: at most 15 bytes, not "." or
//     "..", no '/', ':', whitespace or control characters; unique in the
//     pod. Default: net<N>, see AssignInterfaceNames. "interfaceRequest" is
//     accepted as an old spelling.
//   - ips: addresses or CIDRs for the "ips" capability (static IPAM).
//   - mac: MAC address for the "mac" capability.
//   - default-route: gateway IPs; the pod's default route goes through this
//     interface. At most one IPv4 and one IPv6 gateway per pod, as in Multus.
//   - portMappings, bandwidth: for the "portMappings" and "bandwidth"
//     capabilities.
//   - cni-args: merged into the delegate's args.cni; "steer" is reserved.
//   - infiniband-guid: GUID for the "infinibandGUID" capability.
//   - deviceID: device-plugin device for the "deviceID" capability.
//   - steer: per-pod override of the network's Steer policy (below).
//
// Unknown element keys are ignored, as in Multus. The annotation may not be
// larger than 64 KiB. A capability is only passed in runtimeConfig when a
// plugin of the network declares it (libcni drops the others). As in
// Multus, an element asking for one that is not declared is accepted with a
// warning in the log, and an undeclared mac or ips reaches the delegate's
// ADD in CNI_ARGS: MAC=<mac>, IP=<ips joined by ","> (Multus' older way,
// which static IPAM still reads); DEL and CHECK do not get them. Multus adds
// them for declared capabilities too; Steer does not, since runtimeConfig
// then carries the value and host-local refuses IP=<a>,<b>. With
// "strictCapabilities": true, an undeclared capability fails the ADD
// instead (code 7).
//
// # Steer policy
//
// Without configuration, return traffic of every secondary interface is
// pinned to it. The policy of a network is the "steer" object at the top
// level of its NAD config (next to "type" or "plugins"), each field of which
// the selection element's "steer" object may override for one pod:
//
//	{
//	  "cniVersion": "1.0.0",
//	  "type": "macvlan",
//	  "master": "eth1",
//	  "ipam": {"type": "whereabouts", "range": "192.168.10.0/24", "gateway": "192.168.10.1"},
//	  "steer": {
//	    "steering": true,
//	    "multicast": ["239.1.1.0/24", "ff0e::1:1/128"],
//	    "gateway": "192.168.10.254",
//	    "fallbackRoute": true
//	  }
//	}
//
// Policy keys:
//
//   - steering: pin this interface's traffic to it: replies to flows that
//     came in through it, and traffic sourced from its address, leave through
//     it. Default true; false leaves the interface to the pod's routing
//     table, as with Multus.
//   - multicast: groups (addresses or prefixes, IPv4 inside 224.0.0.0/4,
//     IPv6 inside ff00::/8, no host bits) whose traffic, including IGMP/MLD
//     joins, leaves through this interface instead of the default route. At
//     most 64. When several interfaces take a group it is sent out of each.
//     A list in the element replaces the network's; [] clears it. When no
//     network of the pod gives this key, all multicast (224.0.0.0/4,
//     ff00::/8) goes through the first steered secondary network of each
//     family, in annotation order: the primary networks of Kubernetes
//     clusters (flannel, Calico) carry none. Giving the key on any of the
//     pod's networks, even as [], turns that default off for the pod, and
//     leaves multicast that no list names on eth0.
//   - fallbackRoute: when the primary network gives the pod no default route
//     of an address family (an IPv4-only or IPv6-only cluster) and a steered
//     secondary network has an address of that family, Steer adds a default
//     route of that family through the secondary (via its IPAM gateway, or
//     on-link without one), so replies and traffic from the secondary's
//     address can leave at all. The first steered secondary with the family
//     in annotation order is chosen; true prefers this network, false never
//     uses it. A family the primary routes is never touched.
//   - gateway: next hop for traffic sourced from this interface's address
//     that matches no learned flow, and for the fallback route below: an
//     address, or a list of one per family ("gateway": ["192.0.2.1",
//     "2001:db8:2::1"]), for IPAM that gives none (static addresses from the
//     "ips" element key). Default (or "" or []): the gateways of the
//     attachment's IPAM result.
//
// Unknown policy keys are errors, so that a misspelt key cannot silently
// change where traffic goes. The plugin-wide "steering": false switches all
// of this off.
package netconf
