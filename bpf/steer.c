// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* Steer's pod dataplane. One collection is loaded per pod and attached in its network namespace:
 *  - steer_ingress (TC) / steer_ingress_xdp on each secondary interface learns the flows that
 *    enter through it, with the MAC of the hop that delivered them;
 *  - steer_egress (TC) on every interface sends a packet out of the interface it belongs to:
 *    replies of learned flows, traffic sourced from a secondary's address, and multicast groups
 *    chosen by policy (fanned out when several interfaces take a group).
 * Everything else is left to the kernel untouched.
 *
 * A collection is verified for every pod (in steerd ahead of its ADD, see config.h), and
 * verification takes about a microsecond per instruction it walks, so the code is written for the verifier as much as for the CPU: slots are
 * opaque to it (config.h), so that the configuration does not multiply the paths it walks; the
 * code after the Ethernet header is inlined once per address family (parse.h); the cold paths
 * that loop over the configuration (MSS clamping, multicast) are global functions, verified
 * once. */

#include "lib/common.h"
#include "lib/verifier.h"
#include "lib/layout.h"
#include "lib/config.h"
#include "lib/counters.h"
#include "lib/parse.h"
#include "lib/flow.h"
#include "lib/mss.h"
#include "lib/rewrite.h"
#include "lib/multicast.h"
#include "lib/version.h"
#include "lib/service.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* mac_diff is 0 when two MACs are equal (no branch: see learn_ip). */
static __always_inline __u32 mac_diff(const __u8 *a, const __u8 *b)
{
	return (*(const __u32 *)a ^ *(const __u32 *)b) | (*(const __u16 *)(a + 4) ^ *(const __u16 *)(b + 4));
}

/* addr_diff is 0 when two addresses of family are equal. */
static __always_inline __u64 addr_diff(const union steer_addr *a, const union steer_addr *b, const __u8 family)
{
	if (family == AF_INET)
		return a->v4 ^ b->v4;
	const __u64 *x = (const __u64 *)a->v6, *y = (const __u64 *)b->v6;
	return (x[0] ^ y[0]) | (x[1] ^ y[1]);
}

/* A SYN to clamp, as learn tells it: the offset of its TCP header and the MSS to clamp to. */
#define CLAMP(l4_off, mss) ((__u32)(l4_off) << 16 | (__u16)(mss)) /* l4_off > 0: never 0 */
#define CLAMP_L4_OFF(c) ((c) >> 16)
#define CLAMP_MSS(c) ((c) & 0xffff)

/* learn_ip records a flow of family entering through ifindex (slot, pinned) of ctx (XDP when xdp
 * is set); it returns the counter reason, and in *clamp the SYN to clamp (0: none). */
static __always_inline enum steer_reason learn_ip(void *ctx, __u32 ifindex, __u32 slot, __u32 *clamp,
						  const int xdp, const __u8 family)
{
	void *data = ctx_data(ctx, xdp), *data_end = ctx_data_end(ctx, xdp);
	struct pkt p = {};

	if (parse_ip(data, data_end, &p, family) != PARSE_TRACKED || is_multicast(&p, family))
		return STEER_REASON_PASSED;
	/* Fresh packet pointers: see parse_l4. */
	data = ctx_data(ctx, xdp);
	data_end = ctx_data_end(ctx, xdp);
	struct eth_hdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return STEER_REASON_PASSED;
	/* Echo replies answer the pod's own pings: nothing to pin. */
	if (is_proto(&p, IPPROTO_ICMP) || is_proto(&p, IPPROTO_ICMPV6)) {
		__u8 *type = data + p.l4_off;
		if ((void *)(type + 1) > data_end ||
		    *type == (is_proto(&p, IPPROTO_ICMP) ? ICMP_ECHOREPLY : ICMPV6_ECHO_REPLY))
			return STEER_REASON_PASSED;
	}
	/* A broadcast was not addressed to the pod: learning it would make the reply's source the
	 * broadcast address, which the requester drops. Replies to it leave as the kernel routes. */
	if (is_broadcast(eth, &p, family))
		return STEER_REASON_PASSED;

	struct flow_key key = {};
	flow_key_ingress(&p, &key, family);
	struct flow_value *old = bpf_map_lookup_elem(&steer_flows, &key);
	/* Differences or'ed, not tested one by one: to the verifier, one path to the update
	 * instead of one per reason to update. */
	__u64 stale = 1;
	if (old)
		stale = (old->ifindex ^ ifindex) | mac_diff(old->peer_mac, eth->src) |
			addr_diff(&old->local, &p.daddr, family);
	if (stale) {
		struct flow_value val = {.ifindex = ifindex, .local = p.daddr};
		__builtin_memcpy(val.peer_mac, eth->src, ETH_ALEN);
		__builtin_memcpy(val.local_mac, eth->dst, ETH_ALEN);
#ifdef STEER_NEXT_LAYOUT
		val.seen_ns = bpf_ktime_get_ns();
#endif
		/* Before the flow exists: egress skips lookups on the strength of the flag. */
		if (is_proto(&p, IPPROTO_TCP) && !steer_tcp_foreign && !holds(slot, &p.daddr, family))
			steer_tcp_foreign = 1;
		bpf_map_update_elem(&steer_flows, &key, &val, BPF_ANY);
	}

	__u32 mtu = steer_ifaces[slot].mtu;
	if (mtu && is_proto(&p, IPPROTO_TCP)) {
		__u8 *flags = data + p.l4_off + TCP_FLAGS_OFF;
		if ((void *)(flags + 1) <= data_end && (*flags & TCP_FLAG_SYN))
			*clamp = CLAMP(p.l4_off, mtu - (family == AF_INET ? 40 : 60));
	}
	return STEER_REASON_LEARNED;
}

/* learn records a flow entering through ifindex (slot); see learn_ip. */
static __always_inline enum steer_reason learn(void *ctx, __u32 ifindex, __u32 slot, __u32 *clamp, const int xdp)
{
	if (!pinned_any() || slot >= STEER_MAX_IFACES || !(steer_ifaces[slot].flags & STEER_IFACE_PIN))
		return STEER_REASON_PASSED;
	switch (eth_family(ctx_data(ctx, xdp), ctx_data_end(ctx, xdp))) {
	case AF_INET:
		return learn_ip(ctx, ifindex, slot, clamp, xdp, AF_INET);
	case AF_INET6:
		return learn_ip(ctx, ifindex, slot, clamp, xdp, AF_INET6);
	}
	return STEER_REASON_PASSED;
}

SEC("tc")
int steer_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb_field(skb, ifindex), clamp = 0;
	/* A Service backend's reply goes to the proxy, which rewrites it for the pod's socket:
	 * nothing to learn. */
	if (svc_enabled()) {
		int verdict = steer_svc_divert(skb, 0);
		if (verdict >= 0)
			return verdict;
	}
	__u32 slot = iface_slot(ifindex);
	enum steer_reason r = learn(skb, ifindex, slot, &clamp, 0);

	/* Only SYNs are clamped: a flow's other packets do not pay for the call. */
	if (clamp && steer_clamp_mss_tc(skb, CLAMP_L4_OFF(clamp), CLAMP_MSS(clamp)))
		r = STEER_REASON_MSS_CLAMPED;
	count(slot, r, skb_field(skb, len));
	return TC_ACT_OK;
}

SEC("xdp")
int steer_ingress_xdp(struct xdp_md *ctx)
{
	__u32 ifindex = xdp_field(ctx, ingress_ifindex), clamp = 0;
	__u32 slot = iface_slot(ifindex);
	enum steer_reason r = learn(ctx, ifindex, slot, &clamp, 1);

	if (clamp && steer_clamp_mss_xdp(ctx, CLAMP_L4_OFF(clamp), CLAMP_MSS(clamp)))
		r = STEER_REASON_MSS_CLAMPED;
	count(slot, r, xdp_field(ctx, data_end) - xdp_field(ctx, data));
	return XDP_PASS;
}

/* source_slot returns the slot of another pinned interface holding p's source, or STEER_NO_SLOT
 * (opaque). */
static __always_inline __u32 source_slot(const struct pkt *p, __u32 cur, const __u8 family)
{
	const __u32 want = STEER_IFACE_PIN | has_addr(family);
	/* cur as a mask: comparing i with cur would split the verifier's state on cur. */
	__u32 skip = 1U << cur, src = STEER_NO_SLOT;

	barrier_var(skip); /* or the compiler tests i == cur, which splits the state again */
#pragma unroll
	for (int i = 0; i < STEER_MAX_IFACES; i++) {
		if ((steer_ifaces[i].flags & want) != want || (skip & (1U << i)))
			continue;
		if (holds(i, &p->saddr, family)) {
			src = i;
			break;
		}
	}
	return opaque(src, STEER_SLOT_MASK);
}

/* redirect_source sends p out of slot's interface toward its gateway, resolved by the kernel's
 * neighbour table (a NULL next hop would resolve the destination, unreachable when off-link). */
static __always_inline int redirect_source(__u32 slot, const __u8 family)
{
	struct redir_neigh nh = {};
	__u32 flags = steer_ifaces[slot].flags;
	union steer_addr gw;

	if (family == AF_INET && (flags & STEER_IFACE_GW4)) {
		load_addr(&gw, &steer_ifaces[slot].gw4);
		nh.nh_family = AF_INET;
		nh.nh.v4 = gw.v4;
		return bpf_redirect_neigh(steer_ifaces[slot].ifindex, (void *)&nh, sizeof(nh), 0);
	}
	if (family == AF_INET6 && (flags & STEER_IFACE_GW6)) {
		load_addr(&gw, &steer_ifaces[slot].gw6);
		nh.nh_family = AF_INET6;
		__builtin_memcpy(nh.nh.v6, gw.v6, 16);
		return bpf_redirect_neigh(steer_ifaces[slot].ifindex, (void *)&nh, sizeof(nh), 0);
	}
	return bpf_redirect_neigh(steer_ifaces[slot].ifindex, 0, 0, 0);
}

/* may_be_reply tells whether p can be the reply of a learned flow, sparing the lookup (the
 * costliest step of the primary path) when it cannot. A TCP reply leaves from the flow's local
 * address, which is an address of the pinned interface it was learned on unless
 * steer_tcp_foreign is set: TCP from an address no pinned interface holds (the primary's, the
 * bulk of a pod's traffic) is no reply. src is source_slot's answer. UDP and ICMP replies may
 * leave from any address (a UDP server bound to 0.0.0.0 answers from the primary's). */
static __always_inline int may_be_reply(const struct pkt *p, __u32 cur, __u32 src, const __u8 family)
{
	/* Tests on copies: src and cur live on (see unlinked). */
	if (!is_proto(p, IPPROTO_TCP) || unlinked(src) < STEER_MAX_IFACES || steer_tcp_foreign)
		return 1;
	return pin_holds(unlinked(cur), &p->saddr, family);
}

/* pin_reply redirects a reply of a learned flow to the interface the flow entered by, with the
 * hop that delivered the request as next hop. It returns -1 when the packet is not such a reply. */
static __always_inline int pin_reply(struct __sk_buff *skb, struct pkt *p, __u32 cur, const __u8 family)
{
	struct flow_key key = {};

	flow_key_egress(p, &key, family);
	struct flow_value *f = bpf_map_lookup_elem(&steer_flows, &key);
	if (!f)
		return -1;
	/* TCP answers from the address it was reached at: another source is another connection.
	 * UDP and ICMP replies may carry the kernel's choice of source, corrected here. */
	if (is_proto(p, IPPROTO_TCP) && !addr_eq(&p->saddr, &f->local, family))
		return -1;
	__u32 slot = iface_slot(f->ifindex);
	if (slot >= STEER_MAX_IFACES)
		return -1;
	/* On copies: comparing slot with cur narrows both, apart on each branch (see unlinked). */
	int here = unlinked(slot) == unlinked(cur);
	if (here && addr_eq(&p->saddr, &f->local, family))
		return -1; /* already leaving the right way */
	if (!here && too_big(skb, slot)) {
		count(cur, STEER_REASON_DROP_OVERSIZE, skb_field(skb, len));
		return TC_ACT_SHOT;
	}

	union steer_addr local = f->local;
	if (rewrite_for(skb, p, slot, f->peer_mac, &local, family)) {
		count(cur, STEER_REASON_DROP_ERROR, skb_field(skb, len));
		return TC_ACT_SHOT;
	}
	count(slot, STEER_REASON_PINNED, skb_field(skb, len));
	if (here)
		return TC_ACT_OK; /* no mark: it leaves now, and the pod may read skb->mark */
	/* Finished here: the target's egress program passes it on the mark alone (and clears it)
	 * instead of parsing and looking it up again. */
	skb_field(skb, mark) |= steer_loop_mark;
	return bpf_redirect(steer_ifaces[slot].ifindex, 0);
}

/* egress_ip steers an IP packet of family leaving slot cur. */
static __always_inline int egress_ip(struct __sk_buff *skb, __u32 cur, const __u8 family)
{
	void *data = skb_data(skb), *data_end = skb_data_end(skb);
	struct pkt p = {};
	enum parse_result r = parse_ip_hdr(data, data_end, &p, family);

	/* The transport header is parsed where it is needed, after source_slot: to the verifier,
	 * one path through source_slot's loop rather than one per parse outcome. */
	if (r == PARSE_NOT_IP)
		goto pass;
	if (is_multicast(&p, family)) {
		if (r == PARSE_TRACKED && parse_l4(data, data_end, &p) == PARSE_TRACKED)
			return steer_multicast(skb, cur);
		/* A neighbour solicitation: it may ask for a frontend. */
		if (family == AF_INET6 && is_proto(&p, IPPROTO_ICMPV6) && svc_enabled()) {
			int verdict = steer_svc_divert(skb, 1);
			if (verdict >= 0)
				return verdict;
		}
		goto pass;
	}
	/* To a Service's frontend: the proxy takes it. */
	if (r == PARSE_TRACKED && svc_enabled()) {
		int verdict = steer_svc_divert(skb, 1);
		if (verdict >= 0)
			return verdict;
		data = skb_data(skb); /* fresh packet pointers after the call, to the verifier */
		data_end = skb_data_end(skb);
	}

	if (!pinned_any())
		goto pass; /* no flow, no source to steer */
	__u32 src = source_slot(&p, cur, family);
	if (r == PARSE_TRACKED && parse_l4(data, data_end, &p) == PARSE_TRACKED && may_be_reply(&p, cur, src, family)) {
		int verdict = pin_reply(skb, &p, cur, family);
		if (verdict >= 0)
			return verdict;
	}
	if (src < STEER_MAX_IFACES) {
		count(src, STEER_REASON_SOURCE, skb_field(skb, len));
		/* As for a pinned reply: the target's egress program passes it on the mark alone. */
		skb_field(skb, mark) |= steer_loop_mark;
		return redirect_source(src, family);
	}
pass:
	count(cur, STEER_REASON_PASSED, skb_field(skb, len));
	return TC_ACT_OK;
}

SEC("tc")
int steer_egress(struct __sk_buff *skb)
{
	__u32 cur = iface_slot(skb_field(skb, ifindex));

	if (skb_field(skb, mark) & steer_loop_mark) {
		skb_field(skb, mark) &= ~steer_loop_mark; /* a copy or a reply Steer sent here */
		goto pass;
	}
	switch (eth_family(skb_data(skb), skb_data_end(skb))) {
	case AF_INET:
		return egress_ip(skb, cur, AF_INET);
	case AF_INET6:
		return egress_ip(skb, cur, AF_INET6);
	}
	/* Not IP: an ARP request may ask for a frontend. */
	if (svc_enabled()) {
		int verdict = steer_svc_divert(skb, 1);
		if (verdict >= 0)
			return verdict;
	}
pass:
	count(cur, STEER_REASON_PASSED, skb_field(skb, len));
	return TC_ACT_OK;
}
