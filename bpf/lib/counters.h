/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU packet counters, one row per (interface slot, reason). Typed reasons instead of a bare
 * drop so an operator can tell why a packet took the path it did. */
#pragma once

#include "common.h"
#include "config.h"
#include "version.h"

enum steer_reason {
	STEER_REASON_PASSED = 0,      /* left as the kernel routed it */
	STEER_REASON_LEARNED = 1,     /* ingress on a secondary: flow learned or refreshed */
	STEER_REASON_PINNED = 2,      /* egress: reply redirected to the interface of its flow */
	STEER_REASON_SOURCE = 3,      /* egress: sourced from a secondary address, sent via its gateway */
	STEER_REASON_MULTICAST = 4,   /* egress: multicast copy sent out a group's interface */
	STEER_REASON_MSS_CLAMPED = 5, /* ingress: TCP SYN MSS lowered to the interface MTU */
	STEER_REASON_DROP_OVERSIZE = 6, /* egress: larger than the target interface MTU */
	STEER_REASON_DROP_ERROR = 7,    /* a helper failed while rewriting */
	STEER_REASON_MAX = 8,
};

/* Carries enum steer_reason, enum steer_limits and enum steer_layout into BTF, which has an enum
 * only where a declaration uses it: loaders and bpftool read reason names from the object, bpf2go
 * generates them for Go, and the loader reads the object's layout. A union of them is as large as
 * one, so .rodata keeps its layout. */
volatile const union {
	enum steer_reason reason;
	enum steer_limits limits;
	enum steer_layout layout;
} steer_reasons = { STEER_REASON_MAX };

struct steer_counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (STEER_MAX_IFACES + 1) * STEER_REASON_MAX); /* last row: unknown interface */
	__type(key, __u32);
	__type(value, struct steer_counter);
} steer_counters SEC(".maps");

/* count adds a packet to row (slot, reason); STEER_NO_SLOT is the unknown interfaces' row. */
static __always_inline void count(__u32 slot, enum steer_reason reason, __u32 len)
{
	__u32 key = slot * STEER_REASON_MAX + reason;
	struct steer_counter *c = bpf_map_lookup_elem(&steer_counters, &key);

	if (c) {
		c->packets++;
		c->bytes += len;
	}
}
