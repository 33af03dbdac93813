/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connections to a frontend without backends are refused at once, as a host without a listener
 * refuses them: a TCP reset, or an ICMP (ICMPv6) port unreachable for UDP, so the application
 * gets ECONNREFUSED instead of waiting for a timeout. The answer is built in place of the
 * packet, from the frontend to the pod, and sent back into the pod through the ingress of the
 * interface the packet was leaving by (the kernel takes the pod's own MAC as addressed to it).
 * Checksums are computed in full, whatever the skb's checksum state. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "layout.h"
#include "parse.h"

#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PORT_UNREACH 4
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
#define REFUSE_TTL 64
#define BPF_F_INGRESS 1 /* bpf_redirect */

/* An ICMP or ICMPv6 error quoting a UDP datagram's headers. */
struct icmp_quote4 {
	__u8 type;
	__u8 code;
	__sum16 check;
	__u32 unused;
	struct ip4_hdr ip;
	struct udp_hdr udp;
};

struct icmp_quote6 {
	__u8 type;
	__u8 code;
	__sum16 check;
	__u32 unused;
	struct ip6_hdr ip;
	struct udp_hdr udp;
};

/* csum_of is the one's complement sum of n bytes at p (n a multiple of 4), unfolded. */
static __always_inline __u64 csum_of(void *p, __u32 n)
{
	__s64 s = bpf_csum_diff(0, 0, p, n, 0);

	return s < 0 ? 0 : (__u64)s;
}

static __always_inline __sum16 csum_finish(__u64 s)
{
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__sum16)~s;
}

/* pseudo_sum is the sum of the pseudo-header of an L4 segment of len bytes and proto between
 * the addresses at addrs (source then destination, as in the IP header). */
static __always_inline __u64 pseudo_sum(void *addrs, __u8 proto, __u16 len, const __u8 family)
{
	return csum_of(addrs, family == AF_INET ? 8 : 32) + bpf_htons(proto) + bpf_htons(len);
}

/* tcp_reset fills rst, the answer to segment th carrying payload bytes, as RFC 9293 resets a
 * segment that reached a closed port. */
static __always_inline void tcp_reset(struct tcp_hdr *rst, const struct tcp_hdr *th, __u32 payload)
{
	rst->source = th->dest;
	rst->dest = th->source;
	rst->doff_res = 5 << 4;
	if (th->flags & TCP_FLAG_ACK) {
		rst->seq = th->ack_seq;
		rst->flags = TCP_FLAG_RST;
		return;
	}
	payload += !!(th->flags & TCP_FLAG_SYN) + !!(th->flags & TCP_FLAG_FIN);
	rst->ack_seq = bpf_htonl(bpf_ntohl(th->seq) + payload);
	rst->flags = TCP_FLAG_RST | TCP_FLAG_ACK;
}

/* reply_eth writes the Ethernet header of an answer to the frame at the start of skb: its
 * addresses swapped. */
static __always_inline int reply_eth(struct __sk_buff *skb)
{
	struct eth_hdr eth, out;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)))
		return -1;
	__builtin_memcpy(out.dst, eth.src, ETH_ALEN);
	__builtin_memcpy(out.src, eth.dst, ETH_ALEN);
	return bpf_skb_store_bytes(skb, 0, &out, 2 * ETH_ALEN, 0);
}

/* answer replaces skb's packet after Ethernet with the n bytes at hdrs and sends it back in. */
static __always_inline int answer(struct __sk_buff *skb, void *hdrs, __u32 n)
{
	if (reply_eth(skb) || bpf_skb_change_tail(skb, ETH_HLEN + n, 0) || bpf_skb_store_bytes(skb, ETH_HLEN, hdrs, n, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb_field(skb, ifindex), BPF_F_INGRESS);
}

static __always_inline int refuse4(struct __sk_buff *skb)
{
	struct ip4_hdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) || ip.ver_ihl != 0x45)
		return TC_ACT_SHOT; /* options: not quoted, the packet is dropped */
	struct {
		struct ip4_hdr ip;
		union {
			struct tcp_hdr tcp;
			struct icmp_quote4 icmp;
		};
	} out = {};
	__u32 l4len;
	out.ip.ver_ihl = 0x45;
	out.ip.ttl = REFUSE_TTL;
	out.ip.saddr = ip.daddr;
	out.ip.daddr = ip.saddr;
	if (ip.protocol == IPPROTO_TCP) {
		struct tcp_hdr th;
		if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &th, sizeof(th)) || (th.flags & TCP_FLAG_RST))
			return TC_ACT_SHOT;
		tcp_reset(&out.tcp, &th, bpf_ntohs(ip.tot_len) - sizeof(ip) - (th.doff_res >> 4) * 4);
		l4len = sizeof(out.tcp);
		out.ip.protocol = IPPROTO_TCP;
		out.tcp.check = csum_finish(csum_of(&out.tcp, sizeof(out.tcp)) +
					    pseudo_sum(&out.ip.saddr, IPPROTO_TCP, sizeof(out.tcp), AF_INET));
	} else {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &out.icmp.udp, sizeof(out.icmp.udp)))
			return TC_ACT_SHOT;
		out.icmp.ip = ip;
		out.icmp.type = ICMP_DEST_UNREACH;
		out.icmp.code = ICMP_PORT_UNREACH;
		l4len = sizeof(out.icmp);
		out.ip.protocol = IPPROTO_ICMP;
		out.icmp.check = csum_finish(csum_of(&out.icmp, sizeof(out.icmp)));
	}
	out.ip.tot_len = bpf_htons(sizeof(out.ip) + l4len);
	out.ip.check = csum_finish(csum_of(&out.ip, sizeof(out.ip)));
	return answer(skb, &out, sizeof(out.ip) + l4len);
}

static __always_inline int refuse6(struct __sk_buff *skb)
{
	struct ip6_hdr ip;

	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)))
		return TC_ACT_SHOT;
	struct {
		struct ip6_hdr ip;
		union {
			struct tcp_hdr tcp;
			struct icmp_quote6 icmp;
		};
	} out = {};
	__u32 l4len;
	__u64 sum;
	out.ip.ver_tc_flow = bpf_htonl(6 << 28);
	out.ip.hop_limit = REFUSE_TTL;
	__builtin_memcpy(out.ip.saddr, ip.daddr, 16);
	__builtin_memcpy(out.ip.daddr, ip.saddr, 16);
	if (ip.nexthdr == IPPROTO_TCP) {
		struct tcp_hdr th;
		if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &th, sizeof(th)) || (th.flags & TCP_FLAG_RST))
			return TC_ACT_SHOT;
		tcp_reset(&out.tcp, &th, bpf_ntohs(ip.payload_len) - (th.doff_res >> 4) * 4);
		l4len = sizeof(out.tcp);
		out.ip.nexthdr = IPPROTO_TCP;
		sum = csum_of(&out.tcp, sizeof(out.tcp));
		out.tcp.check = csum_finish(sum + pseudo_sum(out.ip.saddr, IPPROTO_TCP, l4len, AF_INET6));
	} else {
		if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &out.icmp.udp, sizeof(out.icmp.udp)))
			return TC_ACT_SHOT;
		out.icmp.ip = ip;
		out.icmp.type = ICMPV6_DEST_UNREACH;
		out.icmp.code = ICMPV6_PORT_UNREACH;
		l4len = sizeof(out.icmp);
		out.ip.nexthdr = IPPROTO_ICMPV6;
		sum = csum_of(&out.icmp, sizeof(out.icmp));
		out.icmp.check = csum_finish(sum + pseudo_sum(out.ip.saddr, IPPROTO_ICMPV6, l4len, AF_INET6));
	}
	out.ip.payload_len = bpf_htons(l4len);
	return answer(skb, &out, sizeof(out.ip) + l4len);
}

/* steer_svc_refuse answers a TCP segment or UDP datagram of family leaving the pod for a
 * frontend without backends; it drops what it cannot answer (a reset, IPv4 options). */
__subprog int steer_svc_refuse(struct __sk_buff *skb, __u32 family)
{
	if (family == AF_INET)
		return refuse4(skb);
	return refuse6(skb);
}
