/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Common definitions for Steer's BPF programs: kernel types, helpers, and the UAPI constants
 * that live in anonymous enums or macros and so are not in BTF. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TC_ACT_REDIRECT 7

#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ICMPV6 58

#define AF_INET 2
#define AF_INET6 10

/* bpf_*_csum_replace flags (anonymous enum in linux/bpf.h). */
#define BPF_F_PSEUDO_HDR (1ULL << 4)
#define BPF_F_MARK_MANGLED_0 (1ULL << 5)

/* bpf_map_update_elem flags. */
#define BPF_ANY 0

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* A global BPF function (non-static, not inlined): the verifier checks it once, with unknown
 * arguments, instead of once per path that calls it. A call costs several ns (a return is
 * expensive with retbleed/SRSO mitigations), so only cold paths use them. They take the context
 * and scalars only (Linux 5.6; pointers to memory would need 5.12), check their scalars
 * themselves, and return a scalar. */
#define __subprog __attribute__((noinline))

/* opaque returns v, which must be within mask (below 1 << 31), with the verifier knowing only
 * that it is within mask. A constant is tracked along each path it came from and keeps those
 * paths apart: everything after it would be verified once per value (once per interface, for a
 * slot), while an opaque value lets them merge. The value goes through a stack word the verifier
 * does not track (4 bytes, not 8-aligned, and never zero: zeroes it tracks), so it reads back as
 * unknown, and the precision the verifier later needs of it does not reach back to the
 * constants. */
static __always_inline __u32 opaque(__u32 v, __u32 mask)
{
	__u64 word;

	v |= 1U << 31;
	/* word as an output, not a memory clobber: the compiler keeps everything else in registers */
	asm volatile("*(u32 *)(%[w] + 4) = %[v]; %[v] = *(u32 *)(%[w] + 4)" : [v] "+r"(v), "=m"(word) : [w] "r"(&word));
	return v & mask;
}

/* unlinked returns x as a register the verifier does not link to x's other copies (an ALU
 * operation gives it a fresh identity), so that branching on it narrows none of them: the struct
 * field x was stored to keeps its full range and paths that differ only there can merge. */
static __always_inline __u32 unlinked(__u32 x)
{
	asm volatile("%[x] |= 0" : [x] "+r"(x));
	return x;
}
