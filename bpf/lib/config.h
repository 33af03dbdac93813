/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Load-time configuration: a pod's interfaces and multicast groups. Set from Go through
 * CollectionSpec.Variables when the pod's collection is loaded, so the verifier sees constants
 * and nothing is recompiled per pod. */
#pragma once

#include "common.h"

#define STEER_MAX_IFACES 8
#define STEER_MAX_GROUPS 16

enum steer_iface_flags {
	STEER_IFACE_PRIMARY = 1 << 0, /* the cluster network (eth0) */
	STEER_IFACE_PIN = 1 << 1,     /* replies of flows entering here are pinned to it */
	STEER_IFACE_HAS_V4 = 1 << 2,
	STEER_IFACE_HAS_V6 = 1 << 3,
	STEER_IFACE_GW4 = 1 << 4, /* gw4 is set */
	STEER_IFACE_GW6 = 1 << 5, /* gw6 is set */
};

/* 8-byte aligned: addresses are compared as two u64, and the verifier rejects misaligned
 * stack access. */
union steer_addr {
	__u8 v6[16]; /* first, so generated Go sees 16 bytes */
	__be32 v4;
} __attribute__((aligned(8)));

struct steer_iface {
	__u32 ifindex; /* 0: unused slot */
	__u32 mtu;
	enum steer_iface_flags flags;
	__u8 mac[ETH_ALEN];
	__u8 pad[2];
	char name[16]; /* for people reading the pins */
	union steer_addr addr4; /* v4 only */
	union steer_addr addr6;
	union steer_addr gw4;
	union steer_addr gw6;
};

struct steer_group {
	__u8 family; /* AF_INET, AF_INET6; 0: unused */
	__u8 prefixlen;
	__u8 ifaces; /* bitmask of interface slots that take the group */
	__u8 pad;
	union steer_addr addr;
};

volatile const struct steer_iface steer_ifaces[STEER_MAX_IFACES];
volatile const struct steer_group steer_groups[STEER_MAX_GROUPS];

/* steer_loop_mark marks the copies Steer itself sends, so the egress program of the interface
 * they are sent to passes them instead of steering them again. One bit of skb->mark, cleared
 * there; the loader can move it when the pod's own software uses that bit. */
volatile const __u32 steer_loop_mark = 0x00200000;

/* load_addr copies a configured address: the configuration is volatile (so the compiler keeps
 * the loader's values) and helpers need plain memory. */
static __always_inline void load_addr(union steer_addr *dst, const volatile union steer_addr *src)
{
	const volatile __u64 *s = (const volatile __u64 *)src;
	__u64 *d = (__u64 *)dst;

	d[0] = s[0];
	d[1] = s[1];
}

static __always_inline void load_mac(__u8 *dst, int slot)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		dst[i] = steer_ifaces[slot].mac[i];
}

/* iface_slot returns the slot of ifindex, or -1. */
static __always_inline int iface_slot(__u32 ifindex)
{
#pragma unroll
	for (int i = 0; i < STEER_MAX_IFACES; i++) {
		if (steer_ifaces[i].ifindex == ifindex && ifindex)
			return i;
	}
	return -1;
}
