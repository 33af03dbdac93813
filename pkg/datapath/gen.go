package datapath

// The BPF object is built with a pinned clang so the committed output is reproducible;
// 'make check-generated' fails when it is stale.
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -go-package datapath -type steer_iface_flags -type steer_limits -type steer_reason -type steer_svc_prog steer ../../bpf/steer.c -- -I../../bpf/include

// The Service proxy, loaded at a pod's first Service entry (service.go).
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -go-package datapath svc ../../bpf/service.c -- -I../../bpf/include
