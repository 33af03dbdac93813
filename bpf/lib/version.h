/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The version of a pod's pins, pinned beside them as the map "version" so that steerd, steerctl
 * and `bpftool map dump pinned <dir>/version` can tell which build of Steer wrote them, and
 * steerd can replace the programs of pods an older (or newer) build attached. */
#pragma once

#include "common.h"

#define BPF_F_RDONLY_PROG (1U << 7) /* anonymous enum in linux/bpf.h */

/* The layout of the pinned maps' keys and values. Bump it when a struct of a pinned map changes
 * (TestLayoutRecorded tells); adding a map does not change it. A field whose meaning changes takes
 * a new name: upgrades carry entries across layouts field by field, by name
 * (pkg/datapath/convert.go). */
#define STEER_LAYOUT_THIS 3

enum steer_layout {
#ifdef STEER_NEXT_LAYOUT
	STEER_LAYOUT = STEER_LAYOUT_THIS + 1, /* the next layout, which upgrade tests roll to */
#else
	STEER_LAYOUT = STEER_LAYOUT_THIS,
#endif
};

/* Never changes: every build reads every other build's version. */
struct pin_version {
	__u32 layout; /* enum steer_layout, as a number for bpftool */
	__u32 object; /* CRC-32C of the object file: which programs */
};

/* Written by the loader at creation; the programs never read it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pin_version);
	__uint(map_flags, BPF_F_RDONLY_PROG);
} steer_version SEC(".maps");
