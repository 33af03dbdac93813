/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing shared by TC and XDP: Ethernet, IPv4 (no options needed beyond ihl), IPv6 (no
 * extension headers: those packets are passed untouched), TCP, UDP, ICMP and ICMPv6 echo.
 *
 * The family is a compile-time constant of the callers that matter (parse_ip and everything
 * after it is inlined once per family): the verifier then follows an IPv4 and an IPv6 path
 * instead of branching on the family at every address it compares. The protocol, on the other
 * hand, is left unknown to it (see parse_l4), so that TCP, UDP and ICMP share one path. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "config.h"
#include "layout.h"

#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129

#define TCP_FLAGS_OFF 13
#define TCP_FLAG_SYN 0x02

/* A parsed packet; its family is the parsing code's (a constant). */
struct pkt {
	union steer_addr saddr;
	union steer_addr daddr;
	__u8 proto;
	__u8 pad;
	__u16 l4_off;
	__be16 sport; /* ports, or the ICMP echo id in both */
	__be16 dport;
};

/* What parse_ip found. */
enum parse_result {
	PARSE_TRACKED = 0,    /* a flow Steer tracks: every field is set */
	PARSE_UNTRACKED = -1, /* IP, but no flow (fragment, other protocol, cut transport header):
			       * the addresses are set, enough for multicast and source steering */
	PARSE_NOT_IP = -2,    /* the IP header is cut or malformed: nothing is set */
};

/* parse_l4 reads the ports. The bounds it checks are known of data after it (IPv6's transport
 * header is at a constant offset), and differ by protocol: callers using data after it take
 * fresh packet pointers (see ctx_data), or the verifier keeps the protocols' paths apart. */
static __always_inline int parse_l4(void *data, void *data_end, struct pkt *p)
{
	void *l4 = data + p->l4_off;
	/* A copy the verifier does not link to p->proto: branching on p->proto itself would leave
	 * each protocol's path with a constant there, apart from the others through everything
	 * the caller does next. */
	__u8 proto = unlinked(p->proto);

	switch (proto) {
	case IPPROTO_TCP: {
		struct tcp_hdr *th = l4;
		if ((void *)(th + 1) > data_end)
			return PARSE_UNTRACKED;
		p->sport = th->source;
		p->dport = th->dest;
		return PARSE_TRACKED;
	}
	case IPPROTO_UDP: {
		struct udp_hdr *uh = l4;
		if ((void *)(uh + 1) > data_end)
			return PARSE_UNTRACKED;
		p->sport = uh->source;
		p->dport = uh->dest;
		return PARSE_TRACKED;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		/* type, code, checksum, id, sequence: the same layout for both families */
		__u8 *ih = l4;
		if ((void *)(ih + 8) > data_end)
			return PARSE_UNTRACKED;
		__u8 type = ih[0];
		if (!((proto == IPPROTO_ICMP && (type == ICMP_ECHO || type == ICMP_ECHOREPLY)) ||
		      (proto == IPPROTO_ICMPV6 && (type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY))))
			return PARSE_UNTRACKED; /* only echo is a flow Steer tracks */
		p->sport = *(__be16 *)(ih + 4);
		p->dport = p->sport;
		return PARSE_TRACKED;
	}
	}
	return PARSE_UNTRACKED;
}

/* parse_ip_hdr fills p from the IP header after Ethernet, of family (a constant), but for the
 * ports; the caller checked the Ethernet header and its type. */
static __always_inline enum parse_result parse_ip_hdr(void *data, void *data_end, struct pkt *p, const __u8 family)
{
	if (family == AF_INET) {
		struct ip4_hdr *ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return PARSE_NOT_IP;
		__u8 ihl = ip->ver_ihl & 0xf;
		if (ihl < 5)
			return PARSE_NOT_IP;
		p->proto = ip->protocol;
		p->saddr.v4 = ip->saddr;
		p->daddr.v4 = ip->daddr;
		p->l4_off = ETH_HLEN + ihl * 4;
		if (ip->frag_off & bpf_htons(0x3fff)) /* fragment: no ports */
			return PARSE_UNTRACKED;
	} else {
		struct ip6_hdr *ip6 = data + ETH_HLEN;
		if ((void *)(ip6 + 1) > data_end)
			return PARSE_NOT_IP;
		p->proto = ip6->nexthdr;
		__builtin_memcpy(p->saddr.v6, ip6->saddr, 16);
		__builtin_memcpy(p->daddr.v6, ip6->daddr, 16);
		p->l4_off = ETH_HLEN + sizeof(*ip6);
	}
	return PARSE_TRACKED;
}

/* parse_ip fills p from the IP header after Ethernet, of family (a constant), and the transport
 * header after it; the caller checked the Ethernet header and its type. */
static __always_inline enum parse_result parse_ip(void *data, void *data_end, struct pkt *p, const __u8 family)
{
	enum parse_result r = parse_ip_hdr(data, data_end, p, family);

	return r == PARSE_TRACKED ? parse_l4(data, data_end, p) : r;
}

/* eth_family returns the family of an Ethernet frame's payload, or 0 when it is not IP. */
static __always_inline __u8 eth_family(void *data, void *data_end)
{
	struct eth_hdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->proto == bpf_htons(ETH_P_IP))
		return AF_INET;
	if (eth->proto == bpf_htons(ETH_P_IPV6))
		return AF_INET6;
	return 0;
}

/* is_proto tells whether p is of protocol proto, without narrowing p->proto (see unlinked): the
 * paths where it is and where it is not merge again after the test. */
static __always_inline int is_proto(const struct pkt *p, __u8 proto)
{
	return unlinked(p->proto) == proto;
}

static __always_inline int is_multicast(const struct pkt *p, const __u8 family)
{
	if (family == AF_INET)
		return (bpf_ntohl(p->daddr.v4) & 0xf0000000) == 0xe0000000;
	return p->daddr.v6[0] == 0xff;
}

/* is_broadcast tells whether a packet was broadcast: to the Ethernet broadcast address (an IPv4
 * subnet-directed broadcast arrives so) or to 255.255.255.255. */
static __always_inline int is_broadcast(const struct eth_hdr *eth, const struct pkt *p, const __u8 family)
{
	const __u8 *d = eth->dst;

	if ((*(const __u32 *)d & (*(const __u16 *)(d + 4) | 0xffff0000)) == 0xffffffff) /* all six bytes 0xff */
		return 1;
	return family == AF_INET && p->daddr.v4 == 0xffffffff;
}

static __always_inline int addr_eq(const union steer_addr *a, const union steer_addr *b, const __u8 family)
{
	if (family == AF_INET)
		return a->v4 == b->v4;
	const __u64 *x = (const __u64 *)a->v6, *y = (const __u64 *)b->v6;
	return x[0] == y[0] && x[1] == y[1];
}
