/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Multicast groups chosen by policy: the group of a destination, and the fan-out of a packet to
 * every interface that takes it. Both are global functions (verified once, whatever the groups
 * and interfaces): a clone costs far more than the calls, and they parse the packet again
 * themselves, global functions taking no packet pointers. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "config.h"
#include "counters.h"
#include "layout.h"
#include "parse.h"
#include "rewrite.h"

/* group_ifaces returns the interface mask of the first policy group holding p's destination. */
static __always_inline __u8 group_ifaces(const struct pkt *p, const __u8 family)
{
	for (int i = 0; i < STEER_MAX_GROUPS; i++) {
		__u8 gfamily = steer_groups[i].family;
		__u32 plen = steer_groups[i].prefixlen;
		union steer_addr g;

		if (!gfamily)
			break;
		if (gfamily != family)
			continue;
		load_addr(&g, &steer_groups[i].addr);
		if (family == AF_INET) {
			__u32 mask = plen >= 32 ? ~0U : (plen ? ~0U << (32 - plen) : 0);
			if ((bpf_ntohl(p->daddr.v4 ^ g.v4) & mask) == 0)
				return steer_groups[i].ifaces;
			continue;
		}
		__u64 hi = bpf_be64_to_cpu(*(__u64 *)p->daddr.v6 ^ *(__u64 *)g.v6);
		__u64 lo = bpf_be64_to_cpu(*(__u64 *)(p->daddr.v6 + 8) ^ *(__u64 *)(g.v6 + 8));
		__u64 mhi = plen >= 64 ? ~0ULL : (plen ? ~0ULL << (64 - plen) : 0);
		__u64 mlo = plen <= 64 ? 0 : (plen >= 128 ? ~0ULL : ~0ULL << (128 - plen));
		if ((hi & mhi) == 0 && (lo & mlo) == 0)
			return steer_groups[i].ifaces;
	}
	return 0;
}

/* mcast_copy sends a copy of a packet of family out of slot's interface, with that interface's
 * source MAC and address; see steer_mcast_copy. */
static __always_inline int mcast_copy(struct __sk_buff *skb, __u32 slot, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};
	union steer_addr a;

	/* The packet carries the source the previous copy left in it. Its transport header is not
	 * needed again: the caller's parse found it trackable. */
	if (parse_ip_hdr(data, data_end, &p, family) == PARSE_NOT_IP || !local_addr(slot, family, &a))
		return 0;
	if (too_big(skb, slot)) {
		count(slot, STEER_REASON_DROP_OVERSIZE, skb_field(skb, len));
		return 0;
	}
	if (rewrite_for(skb, &p, slot, 0, &a, family)) {
		count(slot, STEER_REASON_DROP_ERROR, skb_field(skb, len));
		return -1;
	}
	skb_field(skb, mark) |= steer_loop_mark;
	if (bpf_clone_redirect(skb, steer_ifaces[slot].ifindex, 0) == 0)
		count(slot, STEER_REASON_MULTICAST, skb_field(skb, len));
	else
		count(slot, STEER_REASON_DROP_ERROR, skb_field(skb, len));
	skb_field(skb, mark) &= ~steer_loop_mark;
	return 1;
}

/* steer_mcast_copy sends a copy of the packet out of slot's interface. It returns 0 when nothing
 * was sent (the interface has no address of the family, or the packet is too big for it), 1 when
 * the packet was rewritten (the copy sent, or counted as failed), -1 when the rewrite failed. A
 * function of its own: verified once instead of once per slot and per source the previous copy
 * left in the packet. */
__subprog int steer_mcast_copy(struct __sk_buff *skb, __u32 slot)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	__u8 family = eth_family(data, data_end);

	if (slot >= STEER_MAX_IFACES)
		return 0;
	if (family == AF_INET)
		return mcast_copy(skb, slot, AF_INET);
	if (family == AF_INET6)
		return mcast_copy(skb, slot, AF_INET6);
	return 0;
}

/* steer_mcast_group returns the interface mask of the policy group of the packet's destination,
 * 0 when in none. A function of its own: the fan-out after it is verified once, not once per
 * group (each is a constant mask on a path of its own). */
__subprog int steer_mcast_group(struct __sk_buff *skb)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};

	switch (eth_family(data, data_end)) {
	case AF_INET:
		if (parse_ip_hdr(data, data_end, &p, AF_INET) == PARSE_NOT_IP)
			return 0;
		return group_ifaces(&p, AF_INET);
	case AF_INET6:
		if (parse_ip_hdr(data, data_end, &p, AF_INET6) == PARSE_NOT_IP)
			return 0;
		return group_ifaces(&p, AF_INET6);
	}
	return 0;
}

/* fan_out sends a packet of family to the group interfaces in mask; see steer_multicast. */
static __always_inline int fan_out(struct __sk_buff *skb, __u32 cur, __u32 mask, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};
	__u8 smac[ETH_ALEN];
	int rewritten = 0;

	/* The caller parsed the packet as trackable: the IP header is all that is needed again. */
	if (parse_ip_hdr(data, data_end, &p, family) == PARSE_NOT_IP)
		goto pass;
	union steer_addr saddr = p.saddr;
	/* The copies' slots, as a mask: comparing i with cur would split the verifier's state on
	 * cur, once per slot. */
	__u32 others = mask & ~(1U << cur);

	barrier_var(others); /* or the compiler tests i == cur, which splits the state again */
	if (bpf_skb_load_bytes(skb, ETH_ALEN, smac, ETH_ALEN))
		goto error;
	for (int i = 0; i < STEER_MAX_IFACES; i++) {
		if (!(others & (1U << i)))
			continue;
		int r = steer_mcast_copy(skb, i);
		if (r < 0)
			return TC_ACT_SHOT;
		rewritten |= r;
	}
	if (!(mask & (1U << cur)))
		return TC_ACT_SHOT; /* every copy has left; the original does not belong here */
	if (rewritten) {
		/* Back to the original source, from the one the last copy left. */
		data = skb_data(skb);
		data_end = skb_data_end(skb);
		if (parse_ip_hdr(data, data_end, &p, family) == PARSE_NOT_IP || set_saddr(skb, &p, &saddr, family) ||
		    set_macs(skb, 0, smac))
			goto error;
	}
pass:
	count(cur, STEER_REASON_PASSED, skb_field(skb, len));
	return TC_ACT_OK;
error:
	count(cur, STEER_REASON_DROP_ERROR, skb_field(skb, len));
	return TC_ACT_SHOT;
}

/* steer_multicast handles a trackable multicast packet leaving slot cur (STEER_NO_SLOT when not
 * steered): it sends a copy out of every interface of the destination's group but cur, each with
 * that interface's source MAC and address; cur keeps the original when it takes the group. The
 * destination MAC is the group's whatever the interface, so only sources change, and the
 * original's are restored after the copies: it leaves as the kernel built it even when a copy
 * failed or cur has no address of the family. A destination in no group passes. */
__subprog int steer_multicast(struct __sk_buff *skb, __u32 cur)
{
	__u32 mask;

	cur &= STEER_SLOT_MASK; /* a slot to the verifier; past STEER_NO_SLOT, takes no group either */
	/* Without groups the verifier sees the rest is dead, and skips it. */
	if (!steer_groups[0].family || !(mask = steer_mcast_group(skb) & 0xff))
		goto pass;
	switch (eth_family(skb_data(skb), skb_data_end(skb))) {
	case AF_INET:
		return fan_out(skb, cur, mask, AF_INET);
	case AF_INET6:
		return fan_out(skb, cur, mask, AF_INET6);
	}
pass:
	count(cur, STEER_REASON_PASSED, skb_field(skb, len));
	return TC_ACT_OK;
}
