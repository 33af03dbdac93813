// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* The Service proxy of a pod (see lib/service.h): loaded at the pod's first Service entry and
 * tail-called by the pod's programs with a packet to a frontend (egress) or from a backend
 * (ingress). */

#include "lib/common.h"
#include "lib/verifier.h"
#include "lib/layout.h"
#include "lib/config.h"
#include "lib/parse.h"
#include "lib/rewrite.h"
#include "lib/refuse.h"
#include "lib/service.h"
#include "lib/svc_proxy.h"
#include "lib/svc_neigh.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* A packet the pod's program diverted but the proxy does not take (its frontend went in between,
 * or it opens a direct flow to a backend: svc_direct) goes on through the pod's egress program;
 * a backend's packet that is no reply enters as the kernel has it. A neighbour solicitation for
 * a frontend is answered (svc_neigh.h). */
SEC("tc")
int steer_svc_egress(struct __sk_buff *skb)
{
	__u8 family = eth_family(skb_data(skb), skb_data_end(skb));
	int verdict;

	if (family == AF_INET)
		verdict = svc_egress(skb, AF_INET);
	else if (family == AF_INET6)
		verdict = svc_egress(skb, AF_INET6);
	else
		return steer_svc_answer_neigh(skb, 0);
	if (verdict == SVC_REFUSE)
		return steer_svc_refuse(skb, family);
	if (verdict != SVC_PASS)
		return verdict;
	if (family == AF_INET)
		return svc_direct(skb, AF_INET);
	verdict = svc_direct(skb, AF_INET6);
	return verdict == SVC_PASS ? steer_svc_answer_neigh(skb, AF_INET6) : verdict;
}

SEC("tc")
int steer_svc_ingress(struct __sk_buff *skb)
{
	__u8 family = eth_family(skb_data(skb), skb_data_end(skb));
	int verdict = -1;

	if (family == AF_INET)
		verdict = svc_ingress(skb, AF_INET);
	else if (family == AF_INET6)
		verdict = svc_ingress(skb, AF_INET6);
	return verdict < 0 ? TC_ACT_OK : verdict;
}
