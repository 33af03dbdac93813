/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The flow table: flows that entered through a secondary interface, keyed from the remote
 * end's view so the reply's egress lookup builds the same key. The local address is not part
 * of the key: a UDP server bound to 0.0.0.0 replies from eth0's address, and its reply must
 * still find the flow (the source is rewritten to flow_value.local). */
#pragma once

#include "common.h"
#include "config.h"
#include "parse.h"

#ifndef STEER_FLOW_ENTRIES
#define STEER_FLOW_ENTRIES 4096 /* default; the loader sets max_entries from configuration */
#endif

struct flow_key {
	__u8 family;
	__u8 proto;
	__be16 remote_port; /* ICMP echo: the id */
	__be16 local_port;  /* ICMP echo: the id */
	__u16 pad;
	union steer_addr remote;
};

struct flow_value {
	__u32 ifindex;          /* the interface the flow entered by */
	__u8 peer_mac[ETH_ALEN]; /* who delivered it: the reply's next hop */
	__u8 local_mac[ETH_ALEN];
#ifdef STEER_NEXT_LAYOUT
	__u64 seen_ns; /* when the flow was last learned: the next layout, which upgrade tests roll to */
#endif
	union steer_addr local; /* the address the remote end talks to */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STEER_FLOW_ENTRIES);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
} steer_flows SEC(".maps");

/* steer_tcp_foreign is set once a TCP flow is learned whose local address is not an address of
 * the interface it entered by (a packet for another interface's address, or for an address the
 * configuration does not list). Until then every TCP flow's local address is a pinned
 * interface's, which lets egress skip the lookup for TCP from any other source (flows are only
 * written here, by learn). Never cleared: it only costs lookups. */
__u32 steer_tcp_foreign;

/* flow_key_ingress builds the key of a packet arriving from the remote end. */
static __always_inline void flow_key_ingress(const struct pkt *p, struct flow_key *k, const __u8 family)
{
	k->family = family;
	k->proto = p->proto;
	k->remote_port = p->sport;
	k->local_port = p->dport;
	k->pad = 0;
	k->remote = p->saddr;
}

/* flow_key_egress builds the key of a packet the pod sends back to the remote end. */
static __always_inline void flow_key_egress(const struct pkt *p, struct flow_key *k, const __u8 family)
{
	k->family = family;
	k->proto = p->proto;
	k->remote_port = p->dport;
	k->local_port = p->sport;
	k->pad = 0;
	k->remote = p->daddr;
}
