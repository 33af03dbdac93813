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

/* clamp_mss lowers the MSS option of a SYN to mss; it returns 1 when it changed the packet. */
static __always_inline int clamp_mss(void *data, void *data_end, const struct pkt *p, __u16 mss)
{
	if (p->proto != IPPROTO_TCP || !(p->tcp_flags & TCP_FLAG_SYN))
		return 0;

	struct tcphdr *th = data + p->l4_off;
	if ((void *)(th + 1) > data_end)
		return 0;
	__u8 *opt = (__u8 *)(th + 1);
	__u8 *end = (__u8 *)th + th->doff * 4;

	for (int i = 0; i < TCP_MAX_OPTIONS; i++) {
		if ((void *)(opt + 1) > data_end || opt >= end)
			return 0;
		__u8 kind = opt[0];
		if (kind == TCPOPT_EOL)
			return 0;
		if (kind == TCPOPT_NOP) {
			opt++;
			continue;
		}
		if ((void *)(opt + 2) > data_end)
			return 0;
		__u8 len = opt[1];
		if (kind == TCPOPT_MSS && len == 4) {
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
		if (len < 2)
			return 0;
		opt += len;
	}
	return 0;
}
