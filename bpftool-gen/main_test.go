package main

import (
	"os"
	"regexp"
	"testing"
)

// uapiTypes are the types the trimmed header may declare: each is defined by the kernel's UAPI
// headers with fixed-width members, so it is laid out alike on every 64-bit little-endian
// architecture (amd64 and arm64 alike) and one BPF object serves both. Architecture-specific
// types (pt_regs, user_pt_regs, user_regs_struct: what kprobes and perf events read) differ
// between them; a type added to the list above must be checked and added here.
var uapiTypes = map[string]string{
	"__s8": "asm-generic/int-ll64.h", "__s16": "asm-generic/int-ll64.h", "__s32": "asm-generic/int-ll64.h",
	"__s64": "asm-generic/int-ll64.h", "__u8": "asm-generic/int-ll64.h", "__u16": "asm-generic/int-ll64.h",
	"__u32": "asm-generic/int-ll64.h", "__u64": "asm-generic/int-ll64.h",
	"__be16": "linux/types.h", "__be32": "linux/types.h", "__be64": "linux/types.h",
	"__sum16": "linux/types.h", "__wsum": "linux/types.h",
	"bpf_map_type": "linux/bpf.h", "xdp_action": "linux/bpf.h", "__sk_buff": "linux/bpf.h",
	"xdp_md": "linux/bpf.h", "bpf_flow_keys": "linux/bpf.h", "bpf_sock": "linux/bpf.h",
	"bpf_redir_neigh": "linux/bpf.h", "bpf_fib_lookup": "linux/bpf.h",
	"ethhdr": "linux/if_ether.h", "iphdr": "linux/ip.h", "in6_addr": "linux/in6.h",
	"ipv6hdr": "linux/ipv6.h", "tcphdr": "linux/tcp.h", "udphdr": "linux/udp.h",
	"icmphdr": "linux/icmp.h", "icmp6hdr": "linux/icmpv6.h", "icmpv6_echo": "linux/icmpv6.h",
	"icmpv6_nd_advt": "linux/icmpv6.h", "icmpv6_nd_ra": "linux/icmpv6.h",
}

var declaration = regexp.MustCompile(`(?m)^(?:(?:struct|union|enum) (\w+)|typedef .*\b(\w+);)`)

// TestHeaderIsArchNeutral reads the committed bpf/include/vmlinux.h: every type it declares is a
// UAPI type, none is architecture-specific.
func TestHeaderIsArchNeutral(t *testing.T) {
	b, err := os.ReadFile("../bpf/include/vmlinux.h")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, m := range declaration.FindAllStringSubmatch(string(b), -1) {
		name := m[1] + m[2]
		seen[name] = true
		if _, ok := uapiTypes[name]; !ok {
			t.Errorf("vmlinux.h declares %s: not a known UAPI type, so possibly laid out differently on arm64 than on amd64", name)
		}
	}
	for _, name := range types {
		if !seen[name] {
			t.Errorf("vmlinux.h lacks %s, which bpftool-gen puts in: regenerate it (make generate)", name)
		}
	}
}
