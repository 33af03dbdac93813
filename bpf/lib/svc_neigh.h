/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The proxy answers the pod's own kernel when it asks for a frontend's link-layer address: an
 * ARP request, an IPv6 neighbour solicitation (svc_solicits). It asks when its route to the
 * ClusterIP is on-link: on a single-stack cluster network, a secondary without a gateway (static
 * addresses, no Steer key) carries the fallback default route of the missing family, and the
 * kernel resolves that family's ClusterIPs on the LAN, where nothing owns them. Answered with the
 * interface's own MAC, the packets to the frontend then leave, meet the egress program and are
 * proxied (the proxy resolves the backend's next hop itself: bpf_redirect_neigh); whatever the
 * proxy does not take leaves addressed to the pod itself and is lost, as it was before.
 * The answer is built in place of the question and sent back in through the ingress of the
 * interface it was leaving by, as refuse.h sends its answers. */
#pragma once

#include "common.h"
#include "layout.h"
#include "refuse.h"
#include "service.h"
#include "svc_proxy.h"

#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2
#define ND_NEIGHBOR_ADVERT 136
#define ND_OPT_SOURCE_LL_ADDR 1
#define ND_OPT_TARGET_LL_ADDR 2
#define ND_HOP_LIMIT 255
#define ND_NA_SOLICITED 0x40000000
#define ND_NA_OVERRIDE 0x20000000

struct arp_frame {
	struct eth_hdr eth;
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
};

/* A neighbour solicitation or advertisement with one link-layer address option, as Linux sends
 * them on Ethernet. */
struct nd_msg {
	__u8 type;
	__u8 code;
	__sum16 check;
	__be32 flags;
	__u8 target[16];
	__u8 opt_type;
	__u8 opt_len; /* in units of 8 bytes */
	__u8 lladdr[ETH_ALEN];
};

struct svc_addr_query {
	union steer_addr addr;
	__u32 family;
	__u32 found;
};

/* svc_frontend_addr_cb stops steer_svc_frontends' walk at a frontend with the query's address. */
static long svc_frontend_addr_cb(void *map, const struct svc_key *k, const struct svc_frontend *fe, struct svc_addr_query *q)
{
	const __u64 *a = (const __u64 *)k->addr.v6, *b = (const __u64 *)q->addr.v6;

	if (k->family != q->family || a[0] != b[0] || a[1] != b[1])
		return 0;
	q->found = 1;
	return 1;
}

/* svc_frontend_addr tells whether a is the address of one of the pod's frontends, of any port
 * and protocol: a walk of the map, for solicitations only (the kernel caches the answer). */
static __always_inline int svc_frontend_addr(const union steer_addr *a, const __u8 family)
{
	struct svc_addr_query q = {.addr = *a, .family = family};

	bpf_for_each_map_elem(&steer_svc_frontends, svc_frontend_addr_cb, &q, 0);
	return q.found;
}

/* svc_answer_arp answers an ARP request for a frontend's IPv4 address: SVC_PASS for any other
 * frame. */
static __always_inline int svc_answer_arp(struct __sk_buff *skb)
{
	struct arp_frame f;
	union steer_addr target = {};

	if (bpf_skb_load_bytes(skb, 0, &f, sizeof(f)) || f.eth.proto != bpf_htons(ETH_P_ARP) ||
	    f.htype != bpf_htons(ARPHRD_ETHER) || f.ptype != bpf_htons(ETH_P_IP) || f.hlen != ETH_ALEN ||
	    f.plen != 4 || f.op != bpf_htons(ARPOP_REQUEST))
		return SVC_PASS;
	__builtin_memcpy(&target.v4, f.tpa, 4);
	if (!svc_frontend_addr(&target, AF_INET))
		return SVC_PASS;
	/* From and to the interface's own MAC: the kernel takes it as addressed to it. */
	__builtin_memcpy(f.eth.dst, f.eth.src, ETH_ALEN);
	f.op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(f.tha, f.sha, ETH_ALEN);
	__builtin_memcpy(f.tpa, f.spa, 4);
	__builtin_memcpy(f.sha, f.eth.src, ETH_ALEN);
	__builtin_memcpy(f.spa, &target.v4, 4);
	if (bpf_skb_store_bytes(skb, 0, &f, sizeof(f), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb_field(skb, ifindex), BPF_F_INGRESS);
}

/* svc_answer_ns answers a neighbour solicitation for a frontend's IPv6 address with a solicited
 * advertisement (RFC 4861 7.2.4): SVC_PASS for any other packet. */
static __always_inline int svc_answer_ns(struct __sk_buff *skb)
{
	struct eth_hdr eth;
	struct {
		struct ip6_hdr ip;
		struct nd_msg nd;
	} m;
	const __u64 *src = (const __u64 *)m.ip.saddr;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) || bpf_skb_load_bytes(skb, ETH_HLEN, &m, sizeof(m)) ||
	    m.ip.nexthdr != IPPROTO_ICMPV6 || m.ip.hop_limit != ND_HOP_LIMIT ||
	    m.ip.payload_len != bpf_htons(sizeof(m.nd)) || m.nd.type != ND_NEIGHBOR_SOLICIT || m.nd.code ||
	    m.nd.opt_type != ND_OPT_SOURCE_LL_ADDR || m.nd.opt_len != 1 || !(src[0] | src[1]))
		return SVC_PASS; /* also duplicate address detection (from ::): never of a frontend */
	union steer_addr target;
	__builtin_memcpy(target.v6, m.nd.target, 16);
	if (!svc_frontend_addr(&target, AF_INET6))
		return SVC_PASS;
	__builtin_memcpy(m.ip.daddr, m.ip.saddr, 16);
	__builtin_memcpy(m.ip.saddr, m.nd.target, 16);
	m.ip.ver_tc_flow = bpf_htonl(6 << 28);
	m.nd.type = ND_NEIGHBOR_ADVERT;
	m.nd.check = 0;
	m.nd.flags = bpf_htonl(ND_NA_SOLICITED | ND_NA_OVERRIDE);
	m.nd.opt_type = ND_OPT_TARGET_LL_ADDR;
	__builtin_memcpy(m.nd.lladdr, eth.src, ETH_ALEN);
	m.nd.check = csum_finish(csum_of(&m.nd, sizeof(m.nd)) + pseudo_sum(m.ip.saddr, IPPROTO_ICMPV6, sizeof(m.nd), AF_INET6));
	__builtin_memcpy(eth.dst, eth.src, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, &eth, 2 * ETH_ALEN, 0) || bpf_skb_store_bytes(skb, ETH_HLEN, &m, sizeof(m), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb_field(skb, ifindex), BPF_F_INGRESS);
}

/* steer_svc_answer_neigh answers a solicitation for a frontend (family 0: ARP, AF_INET6: NDP),
 * or returns SVC_PASS. A global function: its frames stay off the program's stack. */
__subprog int steer_svc_answer_neigh(struct __sk_buff *skb, __u32 family)
{
	if (family == AF_INET6)
		return svc_answer_ns(skb);
	return svc_answer_arp(skb);
}
