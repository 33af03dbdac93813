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
