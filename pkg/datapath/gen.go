package datapath

// The BPF object is built with a pinned clang so the committed output is reproducible;
// 'make check-generated' fails when it is stale. The second build is the next layout (a changed
// flow value and program), embedded instead only by `go build -tags steer_next`: the release the
// upgrade tests roll running pods to and back from.
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -tags !steer_next -go-package datapath -type steer_iface_flags -type steer_limits -type steer_reason -type steer_layout -type steer_svc_prog steer ../../bpf/steer.c -- -I../../bpf/include
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror -mcpu=v3 -DSTEER_NEXT_LAYOUT" -target bpfel -tags steer_next -output-stem steer_next -go-package datapath -type steer_iface_flags -type steer_limits -type steer_reason -type steer_layout -type steer_svc_prog steer ../../bpf/steer.c -- -I../../bpf/include

// The Service proxy, loaded at a pod's first Service entry (service.go), the same in both builds.
//go:generate go tool bpf2go -cc clang-14 -strip llvm-strip-14 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -go-package datapath -type svc_closing svc ../../bpf/service.c -- -I../../bpf/include
