/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing shared by TC and XDP: Ethernet, IPv4 (no options needed beyond ihl), IPv6 (no
 * extension headers: those packets are passed untouched), TCP, UDP, ICMP and ICMPv6 echo. */
#pragma once

#include "common.h"
#include "config.h"

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

struct pkt {
	__u8 family; /* AF_INET or AF_INET6; 0: not IP */
	__u8 proto;
	__u8 tcp_flags;
	__u8 is_echo_req; /* ICMP echo request: the id is the flow's "port" */
	__u16 l3_off;
	__u16 l4_off;
	__be16 sport; /* ports, or the ICMP echo id in both */
	__be16 dport;
	union steer_addr saddr;
	union steer_addr daddr;
};

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

static __always_inline int parse_l4(void *data, void *data_end, struct pkt *p)
{
	void *l4 = data + p->l4_off;

	switch (p->proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > data_end)
			return -1;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		return 0;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			return -1;
		p->sport = uh->source;
		p->dport = uh->dest;
		return 0;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum, id, sequence: the same layout for both families */
		__u8 *ih = l4;
		if ((void *)(ih + 8) > data_end)
			return -1;
		__u8 type = ih[0];
		if ((p->proto == IPPROTO_ICMP && type == ICMP_ECHO) ||
		    (p->proto == IPPROTO_ICMPV6 && type == ICMPV6_ECHO_REQUEST))
			p->is_echo_req = 1;
		else if (!((p->proto == IPPROTO_ICMP && type == ICMP_ECHOREPLY) ||
			   (p->proto == IPPROTO_ICMPV6 && type == ICMPV6_ECHO_REPLY)))
			return -1; /* only echo is a flow Steer tracks */
		p->sport = *(__be16 *)(ih + 4);
		p->dport = p->sport;
		return 0;
	}
	}
	return -1;
}

/* parse fills p; it returns 0 for a trackable IP packet, -1 otherwise (p->family still tells
 * whether it was IP, which is enough for multicast and source steering). */
static __always_inline int parse(void *data, void *data_end, struct pkt *p)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	p->l3_off = ETH_HLEN;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return -1;
		if (ip->ihl < 5)
			return -1;
		p->family = AF_INET;
		p->proto = ip->protocol;
		p->saddr.v4 = ip->saddr;
		p->daddr.v4 = ip->daddr;
		p->l4_off = ETH_HLEN + ip->ihl * 4;
		if (ip->frag_off & bpf_htons(0x3fff)) /* fragment: no ports */
			return -1;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		if ((void *)(ip6 + 1) > data_end)
			return -1;
		p->family = AF_INET6;
		p->proto = ip6->nexthdr;
		__builtin_memcpy(p->saddr.v6, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr.v6, &ip6->daddr, 16);
		p->l4_off = ETH_HLEN + sizeof(*ip6);
	} else {
		return -1;
	}
	return parse_l4(data, data_end, p);
}

static __always_inline int is_multicast(const struct pkt *p)
{
	if (p->family == AF_INET)
		return (bpf_ntohl(p->daddr.v4) & 0xf0000000) == 0xe0000000;
	if (p->family == AF_INET6)
		return p->daddr.v6[0] == 0xff;
	return 0;
}

/* is_broadcast tells whether a packet was broadcast: to the Ethernet broadcast address (an IPv4
 * subnet-directed broadcast arrives so) or to 255.255.255.255. */
static __always_inline int is_broadcast(const struct ethhdr *eth, const struct pkt *p)
{
	const __u8 *d = eth->h_dest;

	if ((d[0] & d[1] & d[2] & d[3] & d[4] & d[5]) == 0xff)
		return 1;
	return p->family == AF_INET && p->daddr.v4 == 0xffffffff;
}

static __always_inline int addr_eq(const union steer_addr *a, const union steer_addr *b, __u8 family)
{
	if (family == AF_INET)
		return a->v4 == b->v4;
	const __u64 *x = (const __u64 *)a->v6, *y = (const __u64 *)b->v6;
	return x[0] == y[0] && x[1] == y[1];
}
