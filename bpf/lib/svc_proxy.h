/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The Service proxy's own maps and its work on a packet to a frontend or from a backend: see
 * service.h.
 *
 * A proxied connection leaves two entries: its connection (the socket's view, egress) and its
 * reverse NAT (the reply's view, ingress). The reply's view is also the view of a connection the
 * pod could open straight to the backend from its address on that network and the same port, so
 * the pair must end with the connection, as conntrack's entries do:
 *  - a TCP connection is over once a FIN went each way, or a reset either way; its pair serves
 *    late packets for SVC_CLOSE_GRACE_NS, then counts as absent (and is deleted when met). A SYN
 *    from the socket on a closing pair opens a new connection;
 *  - a pair that saw no packet for SVC_UDP_IDLE_NS (UDP) or SVC_TCP_IDLE_NS (TCP, a backstop for
 *    a close the proxy missed) counts as absent, unless its other half is still fresh;
 *  - a SYN or datagram the pod sends straight to a backend, whose tuple is the reply view of a
 *    pair, ends that pair: the kernel's own socket owns the tuple (svc_direct). A UDP pair
 *    writes its tick in its backend address's value as it opens and is stamped, so that the
 *    pod's programs leave the datagrams to and from a backend no pair used for a minute to the
 *    kernel (svc_udp_pair_recent);
 *  - a new proxied connection whose tuple on the wire is an open connection's pair, or a socket's
 *    of the pod, takes another source port (SVC_NAT_PORT_*), which the reverse NAT restores.
 * Every entry is stamped with the coarse clock once a second at most: a live connection's packets
 * write nothing more. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "config.h"
#include "layout.h"
#include "parse.h"
#include "rewrite.h"
#include "service.h"

#define SVC_CLOSE_GRACE_NS (10 * SVC_SEC)    /* conntrack's CLOSE, Cilium's FIN timeout */
#define SVC_TCP_IDLE_NS (6 * 3600 * SVC_SEC) /* Cilium's TCP timeout */
#define SVC_STAMP_NS SVC_SEC		     /* how stale a live entry's stamp may be */
/* Source ports a colliding connection takes: above the kernel's ephemeral range (32768-60999 by
 * default), which its own sockets pick from. */
#define SVC_NAT_PORT_MIN 61000
#define SVC_NAT_PORT_COUNT 4536
#define SVC_NAT_TRIES 4

#define TCP_FIN 0x01
#define TCP_RST 0x04
#define BPF_F_CURRENT_NETNS (-1L)

/* struct bpf_sock_tuple (UAPI), per family. */
struct sock_tuple4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
};

struct sock_tuple6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STEER_SVC_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct svc_slot_key);
	__type(value, __u32);
} steer_svc_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STEER_SVC_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct svc_backend);
} steer_svc_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STEER_SVC_CONNS);
	__type(key, struct svc_conn_key);
	__type(value, struct svc_conn);
} steer_svc_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STEER_SVC_CONNS);
	__type(key, struct svc_conn_key); /* the reply's view, see struct svc_rev */
	__type(value, struct svc_rev);
} steer_svc_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STEER_SVC_AFFINITIES);
	__type(key, struct svc_affinity_key);
	__type(value, struct svc_affinity);
} steer_svc_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STEER_SVC_FRONTENDS);
	__type(key, __u32);
	__type(value, struct steer_svc_counter);
} steer_svc_counters SEC(".maps");

static __always_inline struct steer_svc_counter *svc_counter(__u32 id)
{
	return bpf_map_lookup_elem(&steer_svc_counters, &id);
}

#define IPV4_DADDR_OFF 16
#define IPV6_DADDR_OFF 24

/* svc_set_addr rewrites the source (dst 0) or destination (dst 1) address of p to a, fixing
 * the IPv4 header and L4 checksums. */
static __always_inline int svc_set_addr(struct __sk_buff *skb, const struct pkt *p, int dst, const union steer_addr *old,
					const union steer_addr *a, const __u8 family)
{
	__u64 flags;
	int csum_off = l4_csum_off(p, &flags);

	if (addr_eq(old, a, family))
		return 0;
	if (family == AF_INET) {
		if (bpf_l3_csum_replace(skb, ETH_HLEN + IPV4_CSUM_OFF, old->v4, a->v4, 4))
			return -1;
		if (csum_off >= 0 && bpf_l4_csum_replace(skb, csum_off, old->v4, a->v4, flags | 4))
			return -1;
		return bpf_skb_store_bytes(skb, ETH_HLEN + (dst ? IPV4_DADDR_OFF : IPV4_SADDR_OFF), &a->v4, 4, 0);
	}
	__s64 diff = bpf_csum_diff((__be32 *)old->v6, 16, (__be32 *)a->v6, 16, 0);
	if (diff < 0)
		return -1;
	if (csum_off >= 0 && bpf_l4_csum_replace(skb, csum_off, 0, diff, flags))
		return -1;
	return bpf_skb_store_bytes(skb, ETH_HLEN + (dst ? IPV6_DADDR_OFF : IPV6_SADDR_OFF), a->v6, 16, 0);
}

/* svc_set_port rewrites the source (dst 0) or destination (dst 1) port of p. */
static __always_inline int svc_set_port(struct __sk_buff *skb, const struct pkt *p, int dst, __be16 old, __be16 port)
{
	__u64 flags;
	int csum_off = l4_csum_off(p, &flags);

	if (old == port)
		return 0;
	if (csum_off >= 0 && bpf_l4_csum_replace(skb, csum_off, old, port, (flags & ~BPF_F_PSEUDO_HDR) | 2))
		return -1;
	return bpf_skb_store_bytes(skb, p->l4_off + (dst ? 2 : 0), &port, 2, 0);
}

static __always_inline int svc_is_l4(const struct pkt *p)
{
	return is_proto(p, IPPROTO_TCP) || is_proto(p, IPPROTO_UDP);
}

/* svc_pick chooses the backend of a new connection of frontend fe: the client's affinity while
 * it lasts, or a random one of the current generation. It returns 0 when there is none. */
static __always_inline __u32 svc_pick(const struct svc_frontend *fe, const struct pkt *p, const __u8 family)
{
	struct svc_affinity_key ak = {.id = fe->id, .family = family, .client = p->saddr};
	__u64 now = 0, timeout = (__u64)fe->affinity * 1000000000ULL;
	__u32 count = fe->count, id = fe->id, gen = fe->gen;

	if (!count)
		return 0;
	if (timeout) {
		now = bpf_ktime_get_ns();
		struct svc_affinity *a = bpf_map_lookup_elem(&steer_svc_affinity, &ak);
		if (a && now - a->last_ns < timeout) {
			__u32 b = a->backend;
			if (bpf_map_lookup_elem(&steer_svc_backends, &b)) {
				a->last_ns = now;
				return b;
			}
		}
	}
	struct svc_slot_key sk = {.id = id, .gen = gen, .index = bpf_get_prandom_u32() % count};
	__u32 *b = bpf_map_lookup_elem(&steer_svc_slots, &sk);
	if (!b)
		return 0;
	__u32 backend = *b;
	if (timeout) {
		struct svc_affinity na = {.last_ns = now, .backend = backend};
		bpf_map_update_elem(&steer_svc_affinity, &ak, &na, BPF_ANY);
	}
	return backend;
}

/* svc_closed tells whether a connection is over, by what it saw close. */
static __always_inline int svc_closed(__u32 closing)
{
	return (closing & SVC_RST) || (closing & (SVC_FIN_OUT | SVC_FIN_IN)) == (SVC_FIN_OUT | SVC_FIN_IN);
}

/* svc_live tells whether an entry stamped seen with closing is still the connection's at now. */
static __always_inline int svc_live(__u64 seen, __u32 closing, __u8 proto, __u64 now)
{
	if (!seen)
		return 1; /* carried over, stamped at this packet */
	/* Signed: another CPU may have stamped it after this one read the clock. */
	__s64 age = now - seen;
	if (svc_closed(closing))
		return age <= (__s64)SVC_CLOSE_GRACE_NS;
	return age <= (__s64)(proto == IPPROTO_TCP ? SVC_TCP_IDLE_NS : SVC_UDP_IDLE_NS);
}

/* svc_stamp refreshes a live entry's stamp when it is a second old, and tells whether it did. */
static __always_inline int svc_stamp(__u64 *seen, __u32 closing, __u64 now)
{
	if (svc_closed(closing) || (__s64)(now - *seen) <= (__s64)SVC_STAMP_NS)
		return 0;
	*seen = now;
	return 1;
}

/* svc_pair_tick writes now's tick in the value of the backend address (addr, port) of a UDP
 * pair that opens or is stamped: see svc_udp_pair_recent. */
static __always_inline void svc_pair_tick(const union steer_addr *addr, __be16 port, __u8 proto, __u64 now,
					  const __u8 family)
{
	if (proto != IPPROTO_UDP)
		return;
	struct svc_key k = {.family = family, .proto = proto, .port = port, .addr = *addr};
	__u32 *last = bpf_map_lookup_elem(&steer_svc_backend_addrs, &k), tick = svc_tick(now);
	if (last && *last != tick)
		*last = tick;
}

/* svc_close records what a TCP segment with flags says of its connection's end in an entry of
 * its pair (out: sent by the pod), stamping the entry when it makes the connection over. */
static __always_inline void svc_close(__u32 *closing, __u64 *seen, __u8 flags, int out, __u64 now)
{
	__u32 bits = (flags & TCP_RST) ? SVC_RST : out ? SVC_FIN_OUT : SVC_FIN_IN;
	if ((*closing | bits) == *closing)
		return;
	__u32 was = __sync_fetch_and_or(closing, bits);
	if (!svc_closed(was) && svc_closed(was | bits))
		*seen = now;
}

/* svc_tcp_flags reads the flags of a TCP segment p (0 for UDP). */
static __always_inline __u8 svc_tcp_flags(struct __sk_buff *skb, const struct pkt *p)
{
	__u8 flags = 0;

	if (is_proto(p, IPPROTO_TCP) && bpf_skb_load_bytes(skb, p->l4_off + TCP_FLAGS_OFF, &flags, 1))
		return 0;
	return flags;
}

/* svc_conn_of_rev is the connection key of the pair whose reply view is rk, held by rv. */
static __always_inline void svc_conn_of_rev(struct svc_conn_key *ck, const struct svc_conn_key *rk,
					    const struct svc_rev *rv, const __u8 family)
{
	ck->family = family;
	ck->proto = rk->proto;
	ck->sport = rv->client_port ? rv->client_port : rk->dport;
	ck->dport = rv->port;
	ck->saddr = rv->client;
	ck->daddr = rv->frontend;
}

/* svc_socket_holds tells whether a socket of the pod owns the reply view rk: a connection (or
 * listener, or bound datagram socket) it would deliver the backend's packets to. A TCP socket in
 * TIME_WAIT does not: the proxy's packets never reach it (they are rewritten before the stack),
 * and a client that closes first leaves one per connection, which would otherwise make most
 * tuples taken. */
static __always_inline int svc_socket_holds(struct __sk_buff *skb, const struct svc_conn_key *rk, const __u8 family)
{
	struct bpf_sock *sk;

	if (family == AF_INET) {
		struct sock_tuple4 t = {.saddr = rk->saddr.v4, .daddr = rk->daddr.v4, .sport = rk->sport, .dport = rk->dport};
		if (rk->proto == IPPROTO_TCP)
			sk = bpf_sk_lookup_tcp(skb, (void *)&t, sizeof(t), BPF_F_CURRENT_NETNS, 0);
		else
			sk = bpf_sk_lookup_udp(skb, (void *)&t, sizeof(t), BPF_F_CURRENT_NETNS, 0);
	} else {
		struct sock_tuple6 t = {.sport = rk->sport, .dport = rk->dport};
		__builtin_memcpy(t.saddr, rk->saddr.v6, 16);
		__builtin_memcpy(t.daddr, rk->daddr.v6, 16);
		if (rk->proto == IPPROTO_TCP)
			sk = bpf_sk_lookup_tcp(skb, (void *)&t, sizeof(t), BPF_F_CURRENT_NETNS, 0);
		else
			sk = bpf_sk_lookup_udp(skb, (void *)&t, sizeof(t), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* svc_tuple_free tells whether a new connection of the socket ck may use the reply view rk: no
 * open connection of another socket has it (one that is over may be followed on its tuple, as
 * the kernel's own ports are after TIME_WAIT), nor a socket of the pod. */
static __always_inline int svc_tuple_free(struct __sk_buff *skb, const struct svc_conn_key *rk,
					  const struct svc_conn_key *ck, __u64 now, const __u8 family)
{
	struct svc_rev *rv = bpf_map_lookup_elem(&steer_svc_revnat, rk);
	if (rv && !svc_closed(rv->closing) && svc_live(rv->seen_ns, rv->closing, rk->proto, now)) {
		struct svc_conn_key owner = {};
		svc_conn_of_rev(&owner, rk, rv, family);
		if (owner.sport != ck->sport || owner.dport != ck->dport || !addr_eq(&owner.saddr, &ck->saddr, family) ||
		    !addr_eq(&owner.daddr, &ck->daddr, family))
			return 0;
	}
	return !svc_socket_holds(skb, rk, family);
}

/* steer_svc_open opens a new connection of the socket ck through backend bid of frontend id,
 * whose reply view rk lacks only the port on the wire: the socket's own when free, another above
 * the kernel's ephemeral range when not. It writes the pair and returns the port (network
 * order), or -1 when none of SVC_NAT_TRIES was free. A global function: verified once, on a
 * stack of its own. */
__subprog int steer_svc_open(struct __sk_buff *skb, struct svc_conn_key *rk, const struct svc_conn_key *ck, __u32 bid,
			     __u32 id)
{
	if (!rk || !ck)
		return -1;
	__u64 now = bpf_ktime_get_coarse_ns();
	__be16 port = ck->sport;
	int i;

	for (i = 0; i < SVC_NAT_TRIES; i++) {
		rk->dport = port;
		if (rk->family == AF_INET ? svc_tuple_free(skb, rk, ck, now, AF_INET) :
					    svc_tuple_free(skb, rk, ck, now, AF_INET6))
			break;
		port = bpf_htons(SVC_NAT_PORT_MIN + bpf_get_prandom_u32() % SVC_NAT_PORT_COUNT);
	}
	if (i == SVC_NAT_TRIES)
		return -1;
	__be16 translated = port == ck->sport ? 0 : port;
	struct svc_conn nc = {.backend = bid, .frontend = id, .seen_ns = now, .nat_port = translated};
	bpf_map_update_elem(&steer_svc_conns, ck, &nc, BPF_ANY);
	struct svc_rev rv = {.client = ck->saddr, .frontend = ck->daddr, .port = ck->dport,
			     .client_port = translated ? ck->sport : 0, .id = id, .seen_ns = now};
	bpf_map_update_elem(&steer_svc_revnat, rk, &rv, BPF_ANY);
	return port;
}

/* What svc_egress returns for a packet to refuse (steer_svc_refuse): no TC verdict. */
#define SVC_REFUSE 0x100
/* What the proxy's programs return for a packet that is not theirs: the pod's program goes on
 * with it. */
#define SVC_PASS (-1)

/* svc_egress proxies a packet of family to a frontend: SVC_PASS when it is not to one,
 * SVC_REFUSE when the frontend has no backend (or no free port), a verdict otherwise. */
static __always_inline int svc_egress(struct __sk_buff *skb, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};

	if (parse_ip(data, data_end, &p, family) != PARSE_TRACKED || !svc_is_l4(&p))
		return SVC_PASS;
	struct svc_key fk = {.family = family, .proto = p.proto, .port = p.dport, .addr = p.daddr};
	struct svc_frontend *fe = bpf_map_lookup_elem(&steer_svc_frontends, &fk);
	if (!fe)
		return SVC_PASS;
	__u32 id = fe->id;
	struct steer_svc_counter *c = svc_counter(id);
	if (c) {
		c->packets++;
		c->bytes += skb_field(skb, len);
	}
	__u8 flags = svc_tcp_flags(skb, &p);
	__u64 now = bpf_ktime_get_coarse_ns();

	struct svc_conn_key ck = {.family = family, .proto = p.proto, .sport = p.sport, .dport = p.dport,
				  .saddr = p.saddr, .daddr = p.daddr};
	struct svc_conn_key rk = {.family = family, .proto = p.proto};
	struct svc_conn *conn = bpf_map_lookup_elem(&steer_svc_conns, &ck);
	struct svc_backend *be = NULL;
	__be16 nat = p.sport;
	__u32 bid = 0;
	/* A SYN on a closing connection opens a new one. */
	if (conn && conn->frontend == id && !(conn->closing && (flags & (SVC_TCP_SYN | SVC_TCP_ACK)) == SVC_TCP_SYN)) {
		bid = conn->backend;
		be = bpf_map_lookup_elem(&steer_svc_backends, &bid);
	}
	if (conn && be) {
		nat = conn->nat_port ? conn->nat_port : p.sport;
		rk.sport = be->port;
		rk.dport = nat;
		rk.saddr = be->addr;
		rk.daddr = be->saddr;
		if (!svc_live(conn->seen_ns, conn->closing, p.proto, now)) {
			/* Quiet this way: its replies may keep it. */
			struct svc_rev *rv = bpf_map_lookup_elem(&steer_svc_revnat, &rk);
			if (svc_closed(conn->closing) || !rv || !svc_live(rv->seen_ns, rv->closing, p.proto, now))
				be = NULL;
		}
	}
	if (be) {
		/* A pair carried over unstamped is stamped at its first packet. */
		if (!conn->seen_ns || svc_stamp(&conn->seen_ns, conn->closing, now)) {
			conn->seen_ns = now;
			svc_pair_tick(&be->addr, be->port, p.proto, now, family);
		}
		if (flags & (TCP_FIN | TCP_RST)) {
			svc_close((__u32 *)&conn->closing, &conn->seen_ns, flags, 1, now);
			struct svc_rev *rv = bpf_map_lookup_elem(&steer_svc_revnat, &rk);
			if (rv)
				svc_close((__u32 *)&rv->closing, &rv->seen_ns, flags, 1, now);
		}
	} else {
		bid = svc_pick(fe, &p, family);
		if (bid)
			be = bpf_map_lookup_elem(&steer_svc_backends, &bid);
		if (!be) {
			if (c)
				c->no_backend++;
			return SVC_REFUSE; /* by the caller: a call from here would overflow the stack */
		}
		rk.sport = be->port;
		rk.saddr = be->addr;
		rk.daddr = be->saddr;
		int port = steer_svc_open(skb, &rk, &ck, bid, id);
		if (port < 0) {
			if (c)
				c->no_backend++; /* no free port: refused as for want of a backend */
			return SVC_REFUSE;
		}
		nat = port;
		if (c)
			c->conns++;
		svc_pair_tick(&be->addr, be->port, p.proto, now, family);
	}

	union steer_addr daddr = be->addr, saddr = be->saddr, nh = be->nexthop;
	__be16 port = be->port;
	__u32 ifindex = be->ifindex, nh_family = be->nh_family;
	if (svc_set_addr(skb, &p, 1, &p.daddr, &daddr, family) || svc_set_port(skb, &p, 1, p.dport, port) ||
	    svc_set_port(skb, &p, 0, p.sport, nat) || svc_set_addr(skb, &p, 0, &p.saddr, &saddr, family))
		return TC_ACT_SHOT;

	/* The target's egress program passes it on the mark alone. */
	skb_field(skb, mark) |= steer_loop_mark;
	if (!nh_family)
		return bpf_redirect_neigh(ifindex, 0, 0, 0);
	struct redir_neigh rn = {.nh_family = nh_family};
	if (family == AF_INET)
		rn.nh.v4 = nh.v4;
	else
		__builtin_memcpy(rn.nh.v6, nh.v6, 16);
	return bpf_redirect_neigh(ifindex, (void *)&rn, sizeof(rn), 0);
}

/* svc_direct ends the pair whose reply view is the tuple of a packet of family the pod sends
 * straight to a backend (a SYN, a datagram): the kernel's socket owns that tuple now. The packet
 * goes on through the pod's program: SVC_PASS. */
static __always_inline int svc_direct(struct __sk_buff *skb, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};

	if (parse_ip(data, data_end, &p, family) != PARSE_TRACKED || !svc_is_l4(&p))
		return SVC_PASS;
	struct svc_conn_key rk = {.family = family, .proto = p.proto, .sport = p.dport, .dport = p.sport,
				  .saddr = p.daddr, .daddr = p.saddr};
	struct svc_rev *rv = bpf_map_lookup_elem(&steer_svc_revnat, &rk);
	if (!rv)
		return SVC_PASS;
	struct svc_conn_key ck = {};
	svc_conn_of_rev(&ck, &rk, rv, family);
	struct svc_conn *conn = bpf_map_lookup_elem(&steer_svc_conns, &ck);
	/* Its connection, unless the socket's tuple went on to another pair. */
	if (conn && (conn->nat_port ? conn->nat_port : ck.sport) == rk.dport)
		bpf_map_delete_elem(&steer_svc_conns, &ck);
	bpf_map_delete_elem(&steer_svc_revnat, &rk);
	return SVC_PASS;
}

/* svc_ingress rewrites a backend's reply of family back to the frontend: SVC_PASS when it is
 * none. */
static __always_inline int svc_ingress(struct __sk_buff *skb, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};

	if (parse_ip(data, data_end, &p, family) != PARSE_TRACKED || !svc_is_l4(&p))
		return SVC_PASS;
	struct svc_conn_key rk = {.family = family, .proto = p.proto, .sport = p.sport, .dport = p.dport,
				  .saddr = p.saddr, .daddr = p.daddr};
	struct svc_rev *rv = bpf_map_lookup_elem(&steer_svc_revnat, &rk);
	if (!rv)
		return SVC_PASS;
	__u8 flags = svc_tcp_flags(skb, &p);
	__u64 now = bpf_ktime_get_coarse_ns();
	struct svc_conn_key ck = {};
	svc_conn_of_rev(&ck, &rk, rv, family);
	if (!svc_live(rv->seen_ns, rv->closing, p.proto, now)) {
		/* Quiet this way: the pod's packets may keep it. */
		struct svc_conn *conn = bpf_map_lookup_elem(&steer_svc_conns, &ck);
		if (svc_closed(rv->closing) || !conn || !svc_live(conn->seen_ns, conn->closing, p.proto, now)) {
			bpf_map_delete_elem(&steer_svc_revnat, &rk);
			return SVC_PASS;
		}
	}
	if (!rv->seen_ns || svc_stamp(&rv->seen_ns, rv->closing, now)) {
		rv->seen_ns = now;
		svc_pair_tick(&p.saddr, p.sport, p.proto, now, family);
	}
	if (flags & (TCP_FIN | TCP_RST)) {
		svc_close((__u32 *)&rv->closing, &rv->seen_ns, flags, 0, now);
		struct svc_conn *conn = bpf_map_lookup_elem(&steer_svc_conns, &ck);
		if (conn && (conn->nat_port ? conn->nat_port : ck.sport) == rk.dport)
			svc_close((__u32 *)&conn->closing, &conn->seen_ns, flags, 0, now);
	}
	union steer_addr client = rv->client, frontend = rv->frontend;
	__be16 port = rv->port, client_port = ck.sport;
	struct steer_svc_counter *c = svc_counter(rv->id);
	if (c) {
		c->packets++;
		c->bytes += skb_field(skb, len);
	}
	if (svc_set_addr(skb, &p, 0, &p.saddr, &frontend, family) || svc_set_port(skb, &p, 0, p.sport, port) ||
	    svc_set_port(skb, &p, 1, p.dport, client_port) || svc_set_addr(skb, &p, 1, &p.daddr, &client, family))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}
