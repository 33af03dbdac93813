/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Load-time configuration: a pod's interfaces and multicast groups, set from Go through
 * CollectionSpec.Variables, so nothing is recompiled per pod. The groups and the loop mark are
 * constants (.rodata) the verifier prunes by. The interface table is data of its own section
 * (.data.ifaces, frozen once written): the programs verify alike for every pod without groups,
 * so steerd keeps them verified ahead of the pod and its ADD only writes the table. */
#pragma once

#include "common.h"
#include "verifier.h"

/* The sizes of the tables: an enum, not macros, so that bpf2go generates them for Go. */
enum steer_limits {
	STEER_MAX_IFACES = 8,
	STEER_MAX_GROUPS = 16,
};

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
	__u8 plen4; /* prefix length of addr4's subnet; 0: unknown */
	__u8 plen6;
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

volatile struct steer_iface steer_ifaces[STEER_MAX_IFACES] SEC(".data.ifaces");
volatile const struct steer_group steer_groups[STEER_MAX_GROUPS];

/* steer_loop_mark marks the copies and pinned replies Steer itself sends, so the egress program
 * of the interface they are sent to passes them instead of steering them again. One bit of
 * skb->mark, cleared there; the loader can move it when the pod's own software uses that bit. */
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

_Static_assert(__builtin_offsetof(struct steer_iface, mac) % 4 == 0, "load_mac reads a word");

/* load_mac copies slot's MAC to dst, 2-aligned: two loads instead of six. */
static __always_inline void load_mac(__u16 *dst, __u32 slot)
{
	const volatile __u8 *mac = steer_ifaces[slot].mac;
	__u32 lo = *(const volatile __u32 *)mac;

	dst[0] = lo;
	dst[1] = lo >> 16;
	dst[2] = *(const volatile __u16 *)(mac + 4);
}

/* STEER_NO_SLOT is the slot of an interface that is not configured, and its counter row. */
#define STEER_NO_SLOT STEER_MAX_IFACES
/* Slots as the verifier sees them (see opaque): [0, STEER_SLOT_MASK], configured below
 * STEER_MAX_IFACES. */
#define STEER_SLOT_MASK (2 * STEER_MAX_IFACES - 1)
_Static_assert((STEER_MAX_IFACES & (STEER_MAX_IFACES - 1)) == 0, "slots are masked with STEER_SLOT_MASK");

/* iface_slot returns the slot of ifindex, or STEER_NO_SLOT. The slot is opaque to the verifier:
 * one path however many interfaces, instead of one per interface. */
static __always_inline __u32 iface_slot(__u32 ifindex)
{
	__u32 slot = STEER_NO_SLOT;

#pragma unroll
	for (int i = 0; i < STEER_MAX_IFACES; i++) {
		if (steer_ifaces[i].ifindex == ifindex && ifindex) {
			slot = i;
			break;
		}
	}
	return opaque(slot, STEER_SLOT_MASK);
}

/* has_addr is the flag of slot addresses of family (a constant). */
static __always_inline __u32 has_addr(const __u8 family)
{
	return family == AF_INET ? STEER_IFACE_HAS_V4 : STEER_IFACE_HAS_V6;
}

/* local_addr copies slot's address of family into a; it returns 0 when slot has none. */
static __always_inline int local_addr(__u32 slot, const __u8 family, union steer_addr *a)
{
	if (slot >= STEER_MAX_IFACES || !(steer_ifaces[slot].flags & has_addr(family)))
		return 0;
	load_addr(a, family == AF_INET ? &steer_ifaces[slot].addr4 : &steer_ifaces[slot].addr6);
	return 1;
}

/* holds tells whether slot (configured) has address a of family, without copying the
 * configured one. */
static __always_inline int holds(__u32 slot, const union steer_addr *a, const __u8 family)
{
	if (!(steer_ifaces[slot].flags & has_addr(family)))
		return 0;
	if (family == AF_INET)
		return steer_ifaces[slot].addr4.v4 == a->v4;
	const volatile __u64 *c = (const volatile __u64 *)steer_ifaces[slot].addr6.v6;
	const __u64 *x = (const __u64 *)a->v6;
	return c[0] == x[0] && c[1] == x[1];
}

/* pinned_any tells whether any interface is pinned: in a pod without pinned secondaries learning
 * and steering are skipped entirely, which an opaque slot cannot tell. No flow can exist then
 * (flows are learned on pinned interfaces only). It stops at the first pinned slot, usually
 * slot 1. */
static __always_inline int pinned_any(void)
{
#pragma unroll
	for (int i = 0; i < STEER_MAX_IFACES; i++) {
		if (steer_ifaces[i].flags & STEER_IFACE_PIN)
			return 1;
	}
	return 0;
}

/* pin_holds tells whether slot is a pinned interface holding address a of family. */
static __always_inline int pin_holds(__u32 slot, const union steer_addr *a, const __u8 family)
{
	return slot < STEER_MAX_IFACES && (steer_ifaces[slot].flags & STEER_IFACE_PIN) && holds(slot, a, family);
}
