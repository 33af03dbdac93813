/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Header rewrites on the TC egress path. Checksums go through bpf_l3/l4_csum_replace, which know
 * the skb's checksum state (a locally generated packet is usually CHECKSUM_PARTIAL, where only
 * the pseudo-header part may change); a hand-written update would be right only with offload.
 * Writes go through bpf_skb_store_bytes too: one direct write anywhere in the program would make
 * the verifier prepend a bpf_skb_pull_data call for every cloned skb (all of TCP's), pass or not. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "config.h"
#include "layout.h"
#include "parse.h"

#define IPV4_CSUM_OFF 10
#define IPV4_SADDR_OFF 12
#define IPV6_SADDR_OFF 8

static __always_inline int l4_csum_off(const struct pkt *p, __u64 *flags)
{
	*flags = BPF_F_PSEUDO_HDR;
	switch (unlinked(p->proto)) {
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

/* set_saddr rewrites the IP source of a packet of family to addr, fixing the IPv4 header and L4
 * checksums. */
static __always_inline int set_saddr(struct __sk_buff *skb, struct pkt *p, const union steer_addr *addr,
				     const __u8 family)
{
	__u64 flags;
	int csum_off;

	if (addr_eq(&p->saddr, addr, family))
		return 0;
	csum_off = l4_csum_off(p, &flags);
	if (family == AF_INET) {
		__be32 old = p->saddr.v4, new = addr->v4;
		if (bpf_l3_csum_replace(skb, ETH_HLEN + IPV4_CSUM_OFF, old, new, sizeof(new)))
			return -1;
		if (csum_off >= 0 && bpf_l4_csum_replace(skb, csum_off, old, new, flags | sizeof(new)))
			return -1;
		if (bpf_skb_store_bytes(skb, ETH_HLEN + IPV4_SADDR_OFF, &new, sizeof(new), 0))
			return -1;
		p->saddr.v4 = new;
		return 0;
	}

	__s64 diff = bpf_csum_diff((__be32 *)p->saddr.v6, 16, (__be32 *)addr->v6, 16, 0);
	if (diff < 0)
		return -1;
	if (csum_off >= 0 && bpf_l4_csum_replace(skb, csum_off, 0, diff, flags))
		return -1;
	if (bpf_skb_store_bytes(skb, ETH_HLEN + IPV6_SADDR_OFF, addr->v6, 16, 0))
		return -1;
	__builtin_memcpy(p->saddr.v6, addr->v6, 16);
	return 0;
}

/* too_big tells whether a packet cannot leave slot's interface without fragmentation. GSO
 * packets are segmented after the redirect, to the MSS clamped at ingress. */
static __always_inline int too_big(struct __sk_buff *skb, __u32 slot)
{
	__u32 mtu = steer_ifaces[slot].mtu;

	/* The length first: gso_segs is three loads away. */
	return mtu && skb_field(skb, len) > mtu + ETH_HLEN && !skb_field(skb, gso_segs);
}

/* rewrite_for makes p look sent by slot's interface: source MAC, destination MAC when dmac is
 * set (read before anything is written), and the source address when the kernel chose another
 * interface's. */
static __always_inline int rewrite_for(struct __sk_buff *skb, struct pkt *p, __u32 slot, const __u8 *dmac,
				       const union steer_addr *saddr, const __u8 family)
{
	__u16 macs[ETH_ALEN]; /* destination, source */

	if (dmac)
		__builtin_memcpy(macs, dmac, ETH_ALEN);
	load_mac(macs + ETH_ALEN / 2, slot);
	if (saddr && set_saddr(skb, p, saddr, family))
		return -1;
	if (!dmac && bpf_skb_load_bytes(skb, 0, macs, ETH_ALEN))
		return -1;
	return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}
