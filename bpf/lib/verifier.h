/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Ways to keep the verifier's work small. The collection is verified at every pod start, at about
 * a microsecond per instruction the verifier processes, so a path it explores once per interface
 * slot, per protocol or per multicast group multiplies the load time and can hit its limit. Each
 * trick below hides a value the compiler knows, or a call it would inline, so that paths the
 * verifier would keep apart merge. A newer clang or kernel may see through one:
 * TestVerifierCost (pkg/datapath) fails first, on each program's processed-instruction budget. */
#pragma once

#include "common.h"

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
