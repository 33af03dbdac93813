/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The Service proxy's own maps and its work on a packet to a frontend or from a backend: see
 * service.h. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "config.h"
#include "layout.h"
#include "parse.h"
#include "rewrite.h"
#include "service.h"

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

/* What svc_egress returns for a packet to refuse (steer_svc_refuse): no TC verdict. */
#define SVC_REFUSE 0x100

/* svc_egress proxies a packet of family to a frontend: -1 when it is not to one, SVC_REFUSE when
 * the frontend has no backend, a verdict otherwise. */
static __always_inline int svc_egress(struct __sk_buff *skb, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};

	if (parse_ip(data, data_end, &p, family) != PARSE_TRACKED || !svc_is_l4(&p))
		return -1;
	struct svc_key fk = {.family = family, .proto = p.proto, .port = p.dport, .addr = p.daddr};
	struct svc_frontend *fe = bpf_map_lookup_elem(&steer_svc_frontends, &fk);
	if (!fe)
		return -1;
	__u32 id = fe->id;
	struct steer_svc_counter *c = svc_counter(id);
	if (c) {
		c->packets++;
		c->bytes += skb_field(skb, len);
	}

	struct svc_conn_key ck = {.family = family, .proto = p.proto, .sport = p.sport, .dport = p.dport,
				  .saddr = p.saddr, .daddr = p.daddr};
	struct svc_conn *conn = bpf_map_lookup_elem(&steer_svc_conns, &ck);
	struct svc_backend *be = NULL;
	__u32 bid = 0;
	if (conn && conn->frontend == id) {
		bid = conn->backend;
		be = bpf_map_lookup_elem(&steer_svc_backends, &bid);
	}
	if (!be) {
		bid = svc_pick(fe, &p, family);
		if (bid)
			be = bpf_map_lookup_elem(&steer_svc_backends, &bid);
		if (!be) {
			if (c)
				c->no_backend++;
			return SVC_REFUSE; /* by the caller: a call from here would overflow the stack */
		}
		struct svc_conn nc = {.backend = bid, .frontend = id};
		bpf_map_update_elem(&steer_svc_conns, &ck, &nc, BPF_ANY);
		struct svc_conn_key rk = {.family = family, .proto = p.proto, .sport = be->port, .dport = p.sport,
					  .saddr = be->addr, .daddr = be->saddr};
		struct svc_rev rv = {.client = p.saddr, .frontend = p.daddr, .port = p.dport, .id = id};
		bpf_map_update_elem(&steer_svc_revnat, &rk, &rv, BPF_ANY);
		if (c)
			c->conns++;
	}

	union steer_addr daddr = be->addr, saddr = be->saddr, nh = be->nexthop;
	__be16 port = be->port;
	__u32 ifindex = be->ifindex, nh_family = be->nh_family;
	if (svc_set_addr(skb, &p, 1, &p.daddr, &daddr, family) || svc_set_port(skb, &p, 1, p.dport, port) ||
	    svc_set_addr(skb, &p, 0, &p.saddr, &saddr, family))
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

/* svc_ingress rewrites a backend's reply of family back to the frontend: -1 when it is none. */
static __always_inline int svc_ingress(struct __sk_buff *skb, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};

	if (parse_ip(data, data_end, &p, family) != PARSE_TRACKED || !svc_is_l4(&p))
		return -1;
	struct svc_conn_key rk = {.family = family, .proto = p.proto, .sport = p.sport, .dport = p.dport,
				  .saddr = p.saddr, .daddr = p.daddr};
	struct svc_rev *rv = bpf_map_lookup_elem(&steer_svc_revnat, &rk);
	if (!rv)
		return -1;
	union steer_addr client = rv->client, frontend = rv->frontend;
	__be16 port = rv->port;
	struct steer_svc_counter *c = svc_counter(rv->id);
	if (c) {
		c->packets++;
		c->bytes += skb_field(skb, len);
	}
	if (svc_set_addr(skb, &p, 0, &p.saddr, &frontend, family) || svc_set_port(skb, &p, 0, p.sport, port) ||
	    svc_set_addr(skb, &p, 1, &p.daddr, &client, family))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}
