/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Fixed layouts: the packet headers Steer reads and the context fields it uses. vmlinux.h marks
 * every struct for CO-RE relocation, and an object with relocations makes the loader parse the
 * running kernel's BTF to resolve them, about 10 ms of every pod ADD, for offsets that cannot
 * move (wire formats, UAPI). So the headers are declared here, checked against vmlinux.h, and
 * context fields are read at their offsetof, which carries no relocation. */
#pragma once

#include "common.h"

struct eth_hdr {
	__u8 dst[ETH_ALEN];
	__u8 src[ETH_ALEN];
	__be16 proto;
};

struct ip4_hdr {
	__u8 ver_ihl; /* ihl in the low nibble */
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ip6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct tcp_hdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res; /* doff in the high nibble */
	__u8 flags;
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

struct udp_hdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

/* struct bpf_redir_neigh */
struct redir_neigh {
	__u32 nh_family;
	union {
		__be32 v4;
		__u8 v6[16];
	} nh;
};

#define LAYOUT_AS(ours, theirs, field_ours, field_theirs)                                           \
	_Static_assert(__builtin_offsetof(struct ours, field_ours) == __builtin_offsetof(struct theirs, field_theirs), \
		       #ours "." #field_ours)
_Static_assert(sizeof(struct eth_hdr) == sizeof(struct ethhdr), "eth_hdr");
LAYOUT_AS(eth_hdr, ethhdr, proto, h_proto);
_Static_assert(sizeof(struct ip4_hdr) == sizeof(struct iphdr), "ip4_hdr");
LAYOUT_AS(ip4_hdr, iphdr, frag_off, frag_off);
LAYOUT_AS(ip4_hdr, iphdr, protocol, protocol);
LAYOUT_AS(ip4_hdr, iphdr, saddr, saddr);
LAYOUT_AS(ip4_hdr, iphdr, daddr, daddr);
_Static_assert(sizeof(struct ip6_hdr) == sizeof(struct ipv6hdr), "ip6_hdr");
LAYOUT_AS(ip6_hdr, ipv6hdr, nexthdr, nexthdr);
LAYOUT_AS(ip6_hdr, ipv6hdr, saddr, saddr);
LAYOUT_AS(ip6_hdr, ipv6hdr, daddr, daddr);
_Static_assert(sizeof(struct tcp_hdr) == sizeof(struct tcphdr), "tcp_hdr");
LAYOUT_AS(tcp_hdr, tcphdr, window, window);
LAYOUT_AS(tcp_hdr, tcphdr, check, check);
_Static_assert(sizeof(struct udp_hdr) == sizeof(struct udphdr), "udp_hdr");
LAYOUT_AS(udp_hdr, udphdr, check, check);
_Static_assert(sizeof(struct redir_neigh) == sizeof(struct bpf_redir_neigh), "redir_neigh");
LAYOUT_AS(redir_neigh, bpf_redir_neigh, nh.v4, ipv4_nh);

/* Context fields (all __u32), read and written at their offset. */
#define ctx_u32(ctx, type, field) (*(__u32 *)((void *)(ctx) + __builtin_offsetof(type, field)))
#define skb_field(skb, field) ctx_u32(skb, struct __sk_buff, field)
#define xdp_field(ctx, field) ctx_u32(ctx, struct xdp_md, field)
#define skb_data(skb) ((void *)(long)skb_field(skb, data))
#define skb_data_end(skb) ((void *)(long)skb_field(skb, data_end))
#define xdp_data(ctx) ((void *)(long)xdp_field(ctx, data))
#define xdp_data_end(ctx) ((void *)(long)xdp_field(ctx, data_end))

/* ctx_data and ctx_data_end read the packet bounds of a TC context, or of an XDP one when xdp (a
 * constant) is set. Volatile: read again, they are fresh packet pointers to the verifier, free of
 * the ranges it learnt on the earlier ones. */
#define ctx_pkt_ptr(ctx, off) ((void *)(long)*(volatile __u32 *)((void *)(ctx) + (off)))
#define ctx_data(ctx, xdp)                                                                          \
	ctx_pkt_ptr(ctx, (xdp) ? __builtin_offsetof(struct xdp_md, data) : __builtin_offsetof(struct __sk_buff, data))
#define ctx_data_end(ctx, xdp)                                                                      \
	ctx_pkt_ptr(ctx, (xdp) ? __builtin_offsetof(struct xdp_md, data_end) : __builtin_offsetof(struct __sk_buff, data_end))
