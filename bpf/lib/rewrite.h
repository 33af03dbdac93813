/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header rewrites on the TC egress path. Checksums go through bpf_l3/l4_csum_replace, which know
 * the skb's checksum state (a locally generated packet is usually CHECKSUM_PARTIAL, where only
 * the pseudo-header part may change); a hand-written update would be right only with offload. */
#pragma once

#include "common.h"
#include "parse.h"

#define IPV4_CSUM_OFF 10
#define IPV4_SADDR_OFF 12
#define IPV6_SADDR_OFF 8

static __always_inline int l4_csum_off(const struct pkt *p, __u64 *flags)
{
	*flags = BPF_F_PSEUDO_HDR;
	switch (p->proto) {
	case IPPROTO_TCP:
		return p->l4_off + 16;
	case IPPROTO_UDP:
		*flags |= BPF_F_MARK_MANGLED_0; /* IPv4 UDP may carry no checksum */
		return p->l4_off + 6;
	case IPPROTO_ICMPV6:
		return p->l4_off + 2;
	}
	return -1; /* ICMPv4 has no pseudo-header */
}

static __always_inline int set_macs(struct __sk_buff *skb, const __u8 *dst, const __u8 *src)
{
	__u8 macs[2 * ETH_ALEN];

	if (dst)
		__builtin_memcpy(macs, dst, ETH_ALEN);
	else if (bpf_skb_load_bytes(skb, 0, macs, ETH_ALEN))
		return -1;
	__builtin_memcpy(macs + ETH_ALEN, src, ETH_ALEN);
	return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}

/* set_saddr rewrites the IP source to addr, fixing the IPv4 header and L4 checksums. */
static __always_inline int set_saddr(struct __sk_buff *skb, struct pkt *p, const union steer_addr *addr)
{
	__u64 flags;
	int csum_off = l4_csum_off(p, &flags);

	if (p->family == AF_INET) {
		__be32 old = p->saddr.v4, new = addr->v4;
		if (old == new)
			return 0;
		if (bpf_l3_csum_replace(skb, p->l3_off + IPV4_CSUM_OFF, old, new, sizeof(new)))
			return -1;
		if (csum_off >= 0 && bpf_l4_csum_replace(skb, csum_off, old, new, flags | sizeof(new)))
			return -1;
		if (bpf_skb_store_bytes(skb, p->l3_off + IPV4_SADDR_OFF, &new, sizeof(new), 0))
			return -1;
		p->saddr.v4 = new;
		return 0;
	}

	if (addr_eq(&p->saddr, addr, AF_INET6))
		return 0;
	__s64 diff = bpf_csum_diff((__be32 *)p->saddr.v6, 16, (__be32 *)addr->v6, 16, 0);
	if (diff < 0)
		return -1;
	if (csum_off >= 0 && bpf_l4_csum_replace(skb, csum_off, 0, diff, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, p->l3_off + IPV6_SADDR_OFF, addr->v6, 16, 0))
		return -1;
	__builtin_memcpy(p->saddr.v6, addr->v6, 16);
	return 0;
}
