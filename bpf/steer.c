// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* Steer's pod dataplane. One collection is loaded per pod and attached in its network namespace:
 *  - steer_ingress (TC) / steer_ingress_xdp on each secondary interface learns the flows that
 *    enter through it, with the MAC of the hop that delivered them;
 *  - steer_egress (TC) on every interface sends a packet out of the interface it belongs to:
 *    replies of learned flows, traffic sourced from a secondary's address, and multicast groups
 *    chosen by policy (fanned out when several interfaces take a group).
 * Everything else is left to the kernel untouched. */

#include "lib/common.h"
#include "lib/config.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/flow.h"
#include "lib/mss.h"
#include "lib/rewrite.h"

char __license[] SEC("license") = "Dual BSD/GPL";

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* learn records a flow entering through ifindex; it returns the counter reason. */
static __always_inline enum steer_reason learn(void *data, void *data_end, __u32 ifindex, int slot)
{
	struct pkt p = {};

	if (slot < 0 || !(steer_ifaces[slot].flags & STEER_IFACE_PIN))
		return STEER_REASON_PASSED;
	if (parse(data, data_end, &p) < 0 || is_multicast(&p))
		return STEER_REASON_PASSED;
	/* Echo replies answer the pod's own pings: nothing to pin. */
	if ((p.proto == IPPROTO_ICMP || p.proto == IPPROTO_ICMPV6) && !p.is_echo_req)
		return STEER_REASON_PASSED;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return STEER_REASON_PASSED;
	/* A broadcast was not addressed to the pod: learning it would make the reply's source the
	 * broadcast address, which the requester drops. Replies to it leave as the kernel routes. */
	if (is_broadcast(eth, &p))
		return STEER_REASON_PASSED;

	struct flow_key key = {};
	flow_key_ingress(&p, &key);
	struct flow_value *old = bpf_map_lookup_elem(&steer_flows, &key);
	if (!old || old->ifindex != ifindex || !mac_eq(old->peer_mac, eth->h_source) ||
	    !addr_eq(&old->local, &p.daddr, p.family)) {
		struct flow_value val = {.ifindex = ifindex, .local = p.daddr};
		__builtin_memcpy(val.peer_mac, eth->h_source, ETH_ALEN);
		__builtin_memcpy(val.local_mac, eth->h_dest, ETH_ALEN);
		bpf_map_update_elem(&steer_flows, &key, &val, BPF_ANY);
	}

	__u32 mtu = steer_ifaces[slot].mtu;
	__u16 mss = mtu - (p.family == AF_INET ? 40 : 60);
	if (mtu && clamp_mss(data, data_end, &p, mss))
		return STEER_REASON_MSS_CLAMPED;
	return STEER_REASON_LEARNED;
}

SEC("tc")
int steer_ingress(struct __sk_buff *skb)
{
	int slot = iface_slot(skb->ifindex);
	enum steer_reason r = learn((void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex, slot);

	count(slot, r, skb->len);
	return TC_ACT_OK;
}

SEC("xdp")
int steer_ingress_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	int slot = iface_slot(ctx->ingress_ifindex);
	enum steer_reason r = learn(data, data_end, ctx->ingress_ifindex, slot);

	count(slot, r, data_end - data);
	return XDP_PASS;
}

/* local_addr copies slot's address of family into a; it returns 0 when slot has none. */
static __always_inline int local_addr(int slot, __u8 family, union steer_addr *a)
{
	if (slot < 0 || slot >= STEER_MAX_IFACES)
		return 0;
	if (family == AF_INET && (steer_ifaces[slot].flags & STEER_IFACE_HAS_V4)) {
		load_addr(a, &steer_ifaces[slot].addr4);
		return 1;
	}
	if (family == AF_INET6 && (steer_ifaces[slot].flags & STEER_IFACE_HAS_V6)) {
		load_addr(a, &steer_ifaces[slot].addr6);
		return 1;
	}
	return 0;
}

/* too_big tells whether a packet cannot leave slot's interface without fragmentation. GSO
 * packets are segmented after the redirect, to the MSS clamped at ingress. */
static __always_inline int too_big(struct __sk_buff *skb, int slot)
{
	__u32 mtu = steer_ifaces[slot].mtu;

	return mtu && !skb->gso_segs && skb->len > mtu + ETH_HLEN;
}

/* rewrite_for makes p look sent by slot's interface: source MAC, destination MAC when dmac is
 * set, and the source address when the kernel chose another interface's. */
static __always_inline int rewrite_for(struct __sk_buff *skb, struct pkt *p, int slot, const __u8 *dmac,
				       const union steer_addr *saddr)
{
	__u8 smac[ETH_ALEN];

	load_mac(smac, slot);
	if (saddr && set_saddr(skb, p, saddr))
		return -1;
	return set_macs(skb, dmac, smac);
}

/* group_ifaces returns the interface mask of the first policy group holding p's destination. */
static __always_inline __u8 group_ifaces(const struct pkt *p)
{
	for (int i = 0; i < STEER_MAX_GROUPS; i++) {
		__u8 family = steer_groups[i].family;
		__u32 plen = steer_groups[i].prefixlen;
		union steer_addr g;

		if (!family)
			break;
		if (family != p->family)
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

/* multicast sends a copy out of every group interface but the current one, each with that
 * interface's source MAC and address; the current interface keeps the original when it takes
 * the group. The destination MAC is the group's whatever the interface, so only sources change,
 * and the original's are restored after the copies: it leaves as the kernel built it even when
 * a copy failed or the current interface has no address of the family. */
static __always_inline int multicast(struct __sk_buff *skb, struct pkt *p, __u8 mask, int cur)
{
	union steer_addr a, saddr = p->saddr;
	__u8 smac[ETH_ALEN];
	int rewritten = 0;

	if (bpf_skb_load_bytes(skb, ETH_ALEN, smac, ETH_ALEN))
		goto error;
	for (int i = 0; i < STEER_MAX_IFACES; i++) {
		if (!(mask & (1 << i)) || i == cur || !local_addr(i, p->family, &a))
			continue;
		if (too_big(skb, i)) {
			count(i, STEER_REASON_DROP_OVERSIZE, skb->len);
			continue;
		}
		rewritten = 1;
		if (rewrite_for(skb, p, i, 0, &a)) {
			count(i, STEER_REASON_DROP_ERROR, skb->len);
			return TC_ACT_SHOT;
		}
		skb->mark |= steer_loop_mark;
		if (bpf_clone_redirect(skb, steer_ifaces[i].ifindex, 0) == 0)
			count(i, STEER_REASON_MULTICAST, skb->len);
		else
			count(i, STEER_REASON_DROP_ERROR, skb->len);
		skb->mark &= ~steer_loop_mark;
	}
	if (cur < 0 || !(mask & (1 << cur)))
		return TC_ACT_SHOT; /* every copy has left; the original does not belong here */
	if (rewritten && (set_saddr(skb, p, &saddr) || set_macs(skb, 0, smac)))
		goto error;
	count(cur, STEER_REASON_PASSED, skb->len);
	return TC_ACT_OK;
error:
	count(cur, STEER_REASON_DROP_ERROR, skb->len);
	return TC_ACT_SHOT;
}

/* source_slot returns the slot of another steered interface owning p's source, or -1. */
static __always_inline int source_slot(const struct pkt *p, int cur)
{
	union steer_addr a;

	for (int i = 0; i < STEER_MAX_IFACES; i++) {
		if (i == cur || !(steer_ifaces[i].flags & STEER_IFACE_PIN))
			continue;
		if (local_addr(i, p->family, &a) && addr_eq(&p->saddr, &a, p->family))
			return i;
	}
	return -1;
}

/* redirect_source sends p out of slot's interface toward its gateway, resolved by the kernel's
 * neighbour table (a NULL next hop would resolve the destination, unreachable when off-link). */
static __always_inline int redirect_source(const struct pkt *p, int slot)
{
	struct bpf_redir_neigh nh = {};
	__u32 flags = steer_ifaces[slot].flags;
	union steer_addr gw;

	if (p->family == AF_INET && (flags & STEER_IFACE_GW4)) {
		load_addr(&gw, &steer_ifaces[slot].gw4);
		nh.nh_family = AF_INET;
		nh.ipv4_nh = gw.v4;
		return bpf_redirect_neigh(steer_ifaces[slot].ifindex, &nh, sizeof(nh), 0);
	}
	if (p->family == AF_INET6 && (flags & STEER_IFACE_GW6)) {
		load_addr(&gw, &steer_ifaces[slot].gw6);
		nh.nh_family = AF_INET6;
		__builtin_memcpy(nh.ipv6_nh, gw.v6, 16);
		return bpf_redirect_neigh(steer_ifaces[slot].ifindex, &nh, sizeof(nh), 0);
	}
	return bpf_redirect_neigh(steer_ifaces[slot].ifindex, 0, 0, 0);
}

/* pin_reply redirects a reply of a learned flow to the interface the flow entered by, with the
 * hop that delivered the request as next hop. It returns -1 when the packet is not such a reply. */
static __always_inline int pin_reply(struct __sk_buff *skb, struct pkt *p, int cur)
{
	struct flow_key key = {};

	flow_key_egress(p, &key);
	struct flow_value *f = bpf_map_lookup_elem(&steer_flows, &key);
	if (!f)
		return -1;
	/* TCP answers from the address it was reached at: another source is another connection.
	 * UDP and ICMP replies may carry the kernel's choice of source, corrected here. */
	if (p->proto == IPPROTO_TCP && !addr_eq(&p->saddr, &f->local, p->family))
		return -1;
	int slot = iface_slot(f->ifindex);
	if (slot < 0)
		return -1;
	if (slot == cur && addr_eq(&p->saddr, &f->local, p->family))
		return -1; /* already leaving the right way */
	if (slot != cur && too_big(skb, slot)) {
		count(cur, STEER_REASON_DROP_OVERSIZE, skb->len);
		return TC_ACT_SHOT;
	}

	union steer_addr local = f->local;
	__u8 peer[ETH_ALEN];
	__builtin_memcpy(peer, f->peer_mac, ETH_ALEN);
	if (rewrite_for(skb, p, slot, peer, &local)) {
		count(cur, STEER_REASON_DROP_ERROR, skb->len);
		return TC_ACT_SHOT;
	}
	count(slot, STEER_REASON_PINNED, skb->len);
	if (slot == cur)
		return TC_ACT_OK;
	return bpf_redirect(steer_ifaces[slot].ifindex, 0);
}

SEC("tc")
int steer_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
	int cur = iface_slot(skb->ifindex);
	struct pkt p = {};
	int tracked = parse(data, data_end, &p) == 0;

	if (skb->mark & steer_loop_mark) {
		skb->mark &= ~steer_loop_mark; /* a copy Steer sent here */
		goto pass;
	}
	if (!p.family)
		goto pass;

	if (is_multicast(&p)) {
		__u8 mask = group_ifaces(&p);
		if (mask && tracked)
			return multicast(skb, &p, mask, cur);
		goto pass;
	}

	if (tracked) {
		int verdict = pin_reply(skb, &p, cur);
		if (verdict >= 0)
			return verdict;
	}

	int src = source_slot(&p, cur);
	if (src >= 0) {
		count(src, STEER_REASON_SOURCE, skb->len);
		return redirect_source(&p, src);
	}

pass:
	count(cur, STEER_REASON_PASSED, skb->len);
	return TC_ACT_OK;
}
