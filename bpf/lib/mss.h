/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP MSS clamping for flows entering through an interface with a smaller MTU than the one the
 * kernel routes replies by: the reply is redirected past IP-layer MTU handling, so the peer must
 * be told the smaller segment size up front or large segments black-hole.
 *
 * Writes the packet directly and updates the checksum by hand (RFC 1624), which is correct on
 * ingress whatever the skb's checksum state: a CHECKSUM_COMPLETE sum is unchanged because the
 * option and checksum changes cancel, and CHECKSUM_PARTIAL/UNNECESSARY packets are not verified
 * again. The same code therefore serves TC and XDP. */
#pragma once

#include "common.h"
#include "verifier.h"
#include "layout.h"
#include "parse.h"

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCP_MAX_OPTIONS 10

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* csum_replace2 updates a 16-bit one's complement checksum for a 16-bit field change. */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + (__u32) new;
	return ~csum_fold32(sum);
}

/* clamp_mss lowers the MSS option of the TCP SYN whose header is at l4_off to mss; it returns 1
 * when it changed the packet. The options are walked with an offset opaque to the verifier
 * (verifier.h), so that every iteration is one state to it, not one per mix of option kinds and
 * lengths seen before; the option found is rewritten after the walk, verified once. */
static __always_inline int clamp_mss(void *data, void *data_end, __u32 l4_off, __u16 mss)
{
	if (l4_off > ETH_HLEN + 60) /* past the longest IPv4 header: not from parse */
		return 0;
	struct tcp_hdr *th = data + l4_off;
	if ((void *)(th + 1) > data_end)
		return 0;
	__u8 *opts = (__u8 *)(th + 1), *opt;
	__u32 optlen = (th->doff_res >> 4) * 4, off;

	if (optlen <= sizeof(*th))
		return 0;
	optlen -= sizeof(*th); /* at most 40 */
	/* Opaque from the start too: bounds checked at a constant offset from th would narrow th,
	 * differently for each option kind, apart to the end of the walk. */
	off = opaque(0, 511);
	for (int i = 0; i < TCP_MAX_OPTIONS; i++) {
		if (off >= optlen)
			return 0;
		opt = opts + (off & 63); /* a no-op: off < optlen; bounds it for the verifier */
		if ((void *)(opt + 1) > data_end)
			return 0;
		__u8 kind = opt[0], len = 1;
		if (kind == TCPOPT_EOL)
			return 0;
		if (kind != TCPOPT_NOP) {
			if ((void *)(opt + 2) > data_end)
				return 0;
			len = opt[1];
			if (kind == TCPOPT_MSS && len == 4)
				goto found;
			if (len < 2)
				return 0;
		}
		off = opaque(off + len, 511); /* at most 63 + 255 */
	}
	return 0;

found:
	opt = opts + (off & 63);
	if ((void *)(opt + 4) > data_end)
		return 0;
	__be16 *field = (__be16 *)(opt + 2);
	__u16 old = bpf_ntohs(*field);
	if (old <= mss)
		return 0;
	__be16 new = bpf_htons(mss);
	th->check = csum_replace2(th->check, *field, new);
	*field = new;
	return 1;
}

/* Only SYNs are clamped: the rest of a flow does not pay for a call. */
__subprog int steer_clamp_mss_tc(struct __sk_buff *skb, __u32 l4_off, __u32 mss)
{
	return clamp_mss(skb_data(skb), skb_data_end(skb), l4_off, mss);
}

__subprog int steer_clamp_mss_xdp(struct xdp_md *ctx, __u32 l4_off, __u32 mss)
{
	return clamp_mss(xdp_data(ctx), xdp_data_end(ctx), l4_off, mss);
}
