/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Services on secondary networks, proxied in the pod's own programs: a packet the pod sends to a
 * frontend (ClusterIP, port, protocol) is load-balanced to a backend on the Service's network,
 * its destination rewritten to the backend (DNAT) and its source to the pod's address on that
 * network (SNAT, or the backend would answer the pod's primary address through its own primary
 * network), and sent out of that interface; the backend's replies are rewritten back on ingress
 * so that the socket sees the frontend. No conntrack module: the connection table below keeps
 * each connection on its backend for its life.
 *
 * Two objects share the work. The pod's programs (steer.c) only tell a packet to a frontend, or
 * from a backend, and tail-call the proxy's programs (service.c) with it; those do the rest. The
 * proxy is loaded at a pod's first Service entry (pkg/datapath, Program), so a pod without any
 * pays neither its verification at ADD nor more than an array read per packet.
 *
 * The maps are written by the loader:
 *  - steer_svc_frontends: frontend -> service id, backend count and generation, affinity;
 *  - steer_svc_backend_addrs: the backends' addresses and ports, whose packets ingress diverts,
 *    each with the tick of its last active UDP pair (svc_udp_pair_recent);
 *  - steer_svc_slots: (id, generation, index) -> backend id. A new backend set is written in the
 *    generation the frontend does not use, then the frontend is switched to it in one update, so
 *    a packet sees the old set or the new one, never a mix;
 *  - steer_svc_backends: backend id -> address, port, interface, SNAT address, next hop. Ids
 *    of backends that stay do not change, so their connections survive; a removed backend's id
 *    is deleted, and its connections are sent to another backend (TCP gets a reset from it).
 * The proxy's programs write the connection, reverse-NAT and affinity tables (svc_proxy.h says
 * how their entries end). This header holds what both objects see: the layouts, and the maps
 * the pod's programs use from ADD on. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "config.h"
#include "layout.h"
#include "parse.h"

#define STEER_SVC_FRONTENDS 256	 /* frontends of a pod, and rows of its service counters */
#define STEER_SVC_BACKENDS 4096	 /* distinct backends of a pod */
#define STEER_SVC_SLOTS 16384	 /* backend slots over all frontends and both generations */
#define STEER_SVC_CONNS 4096	 /* connections through frontends (LRU: preallocated) */
#define STEER_SVC_AFFINITIES 4096 /* sessionAffinity ClientIP entries */

#define BPF_F_NO_PREALLOC (1U << 0)

#define SVC_SEC 1000000000ULL
#define SVC_UDP_IDLE_NS (60 * SVC_SEC) /* a UDP pair's life without packets: Cilium's non-TCP timeout */
/* The coarse clock in ticks of about a second (svc_tick), in a backend address's value. */
#define SVC_TICK_SHIFT 30
/* How many ticks after its last tick a UDP pair may still be live: its idle time, a tick lost
 * to rounding and one to a stamp written by another CPU meanwhile, with a margin. */
#define SVC_UDP_PAIR_TICKS ((SVC_UDP_IDLE_NS >> SVC_TICK_SHIFT) + 4)

struct steer_svc_state {
	__u32 frontends; /* 0: the pod has none, the programs skip everything below */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct steer_svc_state);
} steer_svc_state SEC(".maps");

/* A frontend as the pod addresses it. */
struct svc_key {
	__u8 family;
	__u8 proto;
	__be16 port;
	__u32 pad;
	union steer_addr addr;
};

struct svc_frontend {
	__u32 id;	/* the row of steer_svc_counters, the namespace of its backend slots */
	__u16 count;	/* backends in generation gen; 0: refused at once (RST, ICMP unreachable) */
	__u8 gen;	/* 0 or 1 */
	__u8 pad;
	__u32 affinity; /* sessionAffinity ClientIP timeout in seconds; 0: none */
	__u32 pad2;
	char service[128]; /* "namespace/name", for people and tools reading the pins */
};

struct svc_slot_key {
	__u32 id;
	__u16 gen;
	__u16 index;
};

struct svc_backend {
	union steer_addr addr;
	union steer_addr saddr;	  /* the pod's address on ifindex: the SNAT source */
	union steer_addr nexthop; /* the backend itself or the network's gateway */
	__u32 ifindex;		  /* the pod's interface on the Service's network */
	__be16 port;
	__u8 family;
	__u8 nh_family; /* 0: the kernel routes to addr through ifindex */
};

/* A connection as the pod's socket sees it. */
struct svc_conn_key {
	__u8 family;
	__u8 proto;
	__be16 sport;
	__be16 dport;
	__u16 pad;
	union steer_addr saddr;
	union steer_addr daddr;
};

/* What ended or is ending a proxied connection (svc_conn.closing, svc_rev.closing). */
enum svc_closing {
	SVC_FIN_OUT = 1, /* a FIN from the pod */
	SVC_FIN_IN = 2,	 /* a FIN from the backend */
	SVC_RST = 4,	 /* a reset either way */
};

struct svc_conn {
	__u32 backend;
	__u32 frontend; /* id */
	__u64 seen_ns;	/* coarse clock: the last packet from the pod (once a second at most), or the
			 * close; 0: carried over from an older proxy, stamped at its next packet */
	enum svc_closing closing;
	__be16 nat_port; /* the source port on the wire; 0: the socket's */
	__u16 pad;
};

/* A reply as it arrives from the backend: saddr/sport the backend, daddr/dport the pod's SNAT
 * address and the connection's port on the wire. */
struct svc_rev {
	union steer_addr client; /* the pod's source before SNAT */
	union steer_addr frontend;
	__be16 port;	    /* the frontend's */
	__be16 client_port; /* the socket's; 0: the reply's destination port */
	__u32 id;
	__u64 seen_ns; /* as svc_conn's, for the backend's packets */
	enum svc_closing closing;
	__u32 pad;
};

struct svc_affinity_key {
	__u32 id;
	__u8 family;
	__u8 pad[3];
	union steer_addr client;
};

struct svc_affinity {
	__u64 last_ns; /* the client's last new connection */
	__u32 backend;
	__u32 pad;
};

struct steer_svc_counter {
	__u64 packets; /* both ways */
	__u64 bytes;
	__u64 conns;	  /* connections (TCP, UDP flows) sent to a backend */
	__u64 no_backend; /* packets refused for want of a backend (or, rarer, of a free port) */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STEER_SVC_FRONTENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct svc_key);
	__type(value, struct svc_frontend);
} steer_svc_frontends SEC(".maps");


struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STEER_SVC_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct svc_key); /* a backend's address, port and protocol */
	__type(value, __u32);	     /* UDP: the tick of its last active pair, see svc_udp_pair_recent */
} steer_svc_backend_addrs SEC(".maps");

/* The proxy's programs, tail-called: egress with a packet to a frontend, ingress with one from a
 * backend. Empty until the proxy is loaded: the tail call falls through. */
enum steer_svc_prog {
	STEER_SVC_PROG_EGRESS = 0,
	STEER_SVC_PROG_INGRESS = 1,
	STEER_SVC_PROGS = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, STEER_SVC_PROGS);
	__type(key, enum steer_svc_prog); /* in BTF, for bpf2go */
	__type(value, __u32);
} steer_svc_progs SEC(".maps");

/* svc_enabled tells whether the pod has frontends: an array lookup the verifier inlines. */
static __always_inline int svc_enabled(void)
{
	__u32 zero = 0;
	struct steer_svc_state *s = bpf_map_lookup_elem(&steer_svc_state, &zero);

	return s && s->frontends;
}

/* svc_key_of fills k with the protocol, address and port of the packet of family at the start of
 * skb: its destination (dst set) or its source, and *l4_off with its transport header's offset.
 * Through bpf_skb_load_bytes: no packet bounds for the verifier to split the caller's paths on.
 * It returns -1 for a packet that is not TCP or UDP (or IPv6 with extension headers, or a
 * fragment). */
static __always_inline int svc_key_of(struct __sk_buff *skb, struct svc_key *k, int dst, __u32 *l4_off,
				      const __u8 family)
{
	__u8 proto;

	k->family = family;
	if (family == AF_INET) {
		struct ip4_hdr ip;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) || (ip.frag_off & bpf_htons(0x3fff)))
			return -1;
		proto = ip.protocol;
		k->addr.v4 = dst ? ip.daddr : ip.saddr;
		*l4_off = (ETH_HLEN + (ip.ver_ihl & 0xf) * 4) & 0xff;
	} else {
		struct ip6_hdr ip;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
			return -1;
		proto = ip.nexthdr;
		__builtin_memcpy(k->addr.v6, dst ? ip.daddr : ip.saddr, 16);
		*l4_off = ETH_HLEN + sizeof(ip);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return -1;
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, *l4_off, ports, sizeof(ports)))
		return -1;
	k->proto = proto;
	k->port = ports[dst ? 1 : 0];
	return 0;
}

#define SVC_TCP_SYN 0x02
#define SVC_TCP_ACK 0x10

static __always_inline __u32 svc_tick(__u64 now_ns)
{
	return now_ns >> SVC_TICK_SHIFT;
}

/* svc_udp_pair_recent tells, from a backend address's value, whether a proxied UDP pair to it
 * may still be live: the proxy writes the tick of each pair's opening and stamps there (at most
 * once a second per pair), so an address whose last tick is older than a pair's idle life has
 * none. Its packets, and the pod's datagrams straight to it, then owe the proxy nothing, and an
 * established direct flow does not pay the tail call per datagram. 0 (a loader that wrote no
 * ticks) tells nothing: the packet goes to the proxy. */
static __always_inline int svc_udp_pair_recent(const __u32 *last)
{
	__u32 tick = *last;

	/* Signed: another CPU may have written a tick after this one read the clock. */
	return !tick || (__s32)(svc_tick(bpf_ktime_get_coarse_ns()) - tick) <= (__s32)SVC_UDP_PAIR_TICKS;
}

/* svc_backend_diverted tells whether a packet of k's protocol to or from the backend address k
 * goes to the proxy: any TCP segment (a TCP pair lives until it closes), a UDP datagram while a
 * pair to it may be live. */
static __always_inline int svc_backend_diverted(const struct svc_key *k)
{
	__u32 *last = bpf_map_lookup_elem(&steer_svc_backend_addrs, k);

	return last && (k->proto == IPPROTO_TCP || svc_udp_pair_recent(last));
}

/* svc_tcp_opens tells whether the TCP segment at l4_off opens a connection: a SYN without ACK. */
static __always_inline int svc_tcp_opens(struct __sk_buff *skb, __u32 l4_off)
{
	__u8 flags;

	return !bpf_skb_load_bytes(skb, l4_off + 13, &flags, 1) && (flags & (SVC_TCP_SYN | SVC_TCP_ACK)) == SVC_TCP_SYN;
}

/* svc_opens_direct tells whether a packet of k's protocol (k its destination), not to a
 * frontend, may open a flow of the pod straight to a backend that collides with a proxied pair:
 * a SYN, or a UDP datagram while a pair to that backend may be live. The proxy drops the reply
 * tuple of an older proxied connection it collides with (see svc_direct). */
static __always_inline int svc_opens_direct(struct __sk_buff *skb, const struct svc_key *k, __u32 l4_off)
{
	if (k->proto == IPPROTO_TCP && !svc_tcp_opens(skb, l4_off))
		return 0;
	return svc_backend_diverted(k);
}

/* svc_from_pair tells whether a packet from the backend address k may belong to a proxied pair.
 * A SYN without ACK never does (the pod opens every proxied connection): it is a backend opening
 * a connection to the pod, which the pod's ingress program learns like any other, so that the
 * pod's replies leave by the interface it came in by. */
static __always_inline int svc_from_pair(struct __sk_buff *skb, const struct svc_key *k, __u32 l4_off)
{
	if (k->proto == IPPROTO_TCP && svc_tcp_opens(skb, l4_off))
		return 0;
	return svc_backend_diverted(k);
}

#define ETH_P_ARP 0x0806
#define ND_NEIGHBOR_SOLICIT 135

/* svc_solicits tells whether the frame at the start of skb, of family (0: not IP), asks for a
 * neighbour's link-layer address: an ARP request, an IPv6 neighbour solicitation. The pod's
 * kernel asks for a frontend's when its route to the ClusterIP is on-link (a secondary without
 * a gateway carrying the family the cluster network lacks); the proxy answers for frontends
 * (svc_neigh.h), multicast solicitations and the unicast ones that confirm an entry alike. */
static __always_inline int svc_solicits(struct __sk_buff *skb, const __u8 family)
{
	if (family == AF_INET)
		return 0;
	if (family == 0) {
		__be16 proto;
		return !bpf_skb_load_bytes(skb, 2 * ETH_ALEN, &proto, sizeof(proto)) && proto == bpf_htons(ETH_P_ARP);
	}
	__u8 nexthdr, type;
	return !bpf_skb_load_bytes(skb, ETH_HLEN + __builtin_offsetof(struct ip6_hdr, nexthdr), &nexthdr, 1) &&
	       nexthdr == IPPROTO_ICMPV6 && !bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(struct ip6_hdr), &type, 1) &&
	       type == ND_NEIGHBOR_SOLICIT;
}

/* svc_divert hands a packet of family to the proxy's program prog when its destination (dst) is a
 * frontend or may open a direct flow to a backend, or its source is a backend whose packets may
 * be a pair's; it returns only when it did not, with a negative value. */
static __always_inline int svc_divert(struct __sk_buff *skb, int dst, __u32 prog, const __u8 family)
{
	struct svc_key k = {};
	__u32 l4_off = 0;

	if (svc_key_of(skb, &k, dst, &l4_off, family)) {
		if (dst && svc_solicits(skb, family))
			bpf_tail_call(skb, &steer_svc_progs, prog);
		return -1;
	}
	if (dst) {
		if (!bpf_map_lookup_elem(&steer_svc_frontends, &k) && !svc_opens_direct(skb, &k, l4_off))
			return -1;
	} else if (!svc_from_pair(skb, &k, l4_off)) {
		return -1;
	}
	bpf_tail_call(skb, &steer_svc_progs, prog);
	return -1; /* the proxy is not loaded */
}

/* steer_svc_divert hands a packet to the proxy when it goes to a frontend or may open a direct
 * flow to a backend (dst set), or comes from a backend; leaving, a neighbour solicitation too
 * (svc_solicits). A global function: verified once, and the caller's paths with and without it
 * merge again after the call. A tail call from a function replaces the function: the caller gets
 * the proxy program's verdict (>= 0) as its return value, or a negative one when the packet is not
 * the proxy's (or the proxy is not loaded): the caller goes on with it. */
__subprog int steer_svc_divert(struct __sk_buff *skb, __u32 dst)
{
	__u32 prog = dst ? STEER_SVC_PROG_EGRESS : STEER_SVC_PROG_INGRESS;

	switch (eth_family(skb_data(skb), skb_data_end(skb))) {
	case AF_INET:
		svc_divert(skb, dst, prog, AF_INET);
		break;
	case AF_INET6:
		svc_divert(skb, dst, prog, AF_INET6);
		break;
	default:
		if (dst && svc_solicits(skb, 0))
			bpf_tail_call(skb, &steer_svc_progs, prog);
	}
	/* Through unlinked: the compiler would otherwise fold this constant into the callers and
	 * drop their test of the proxy's verdict, which it cannot see come back. */
	return (int)unlinked((__u32)-1);
}
