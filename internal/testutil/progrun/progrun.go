// Package progrun runs a BPF program on a packet with BPF_PROG_TEST_RUN: the one harness of the
// datapath tests, the datapath benchmarks and the per-packet benchmarks (benchmarks/internal/
// perpkt).
//
// It issues the command itself: cilium/ebpf's Program.Run does not return the kernel's duration,
// and Program.Benchmark takes no context (the interface a TC program runs on). It is a package of
// its own, not a test hook exported from datapath, because it knows the kernel's interface only
// (contexts, verdicts, the command) and nothing of Steer: the product exports nothing for it, and
// the benchmarks outside pkg/datapath can use it.
//
// A run happens in the calling thread's network namespace: the programs find their interface by
// ifindex, so callers run it inside the pod's (ns.NetNS.Do).
package progrun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Verdicts (TC_ACT_*, XDP_*).
const (
	TCOK       = 0
	TCShot     = 2
	TCRedirect = 7
	XDPDrop    = 1
	XDPPass    = 2
)

// Skb is the prefix of struct __sk_buff that BPF_PROG_TEST_RUN takes as a TC program's context.
// The kernel accepts mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len, gso_segs,
// gso_size and hwtstamp; everything else must be zero. TestContextLayout checks it against BTF.
type Skb struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex, TCIndex                                  uint32
	CB                                                                          [5]uint32
	Hash, TCClassid, Data, DataEnd, NapiID, Family, RemoteIP4, LocalIP4         uint32
	RemoteIP6, LocalIP6                                                         [4]uint32
	RemotePort, LocalPort, DataMeta                                             uint32
	FlowKeys, Tstamp                                                            uint64
	WireLen, GSOSegs                                                            uint32
	Sk                                                                          uint64
	GSOSize                                                                     uint32
	TstampType                                                                  uint8
	_                                                                           [3]uint8
	HWTstamp                                                                    uint64
}

// XDPMD is struct xdp_md, an XDP program's context.
type XDPMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// TC is the context of a TC program run on ifindex.
func TC(ifindex int) Skb { return Skb{Ifindex: uint32(ifindex)} }

// XDP is the context of an XDP program run on a frame of frameLen bytes arriving on ifindex.
func XDP(ifindex, frameLen int) XDPMD {
	return XDPMD{DataEnd: uint32(frameLen), IngressIfindex: uint32(ifindex)}
}

// Encode lays a context out as the kernel reads it, once, for a run repeated in a loop.
func Encode(ctx any) []byte {
	b, err := binary.Append(nil, binary.NativeEndian, ctx)
	if err != nil {
		panic(fmt.Sprintf("progrun: encode %T: %v", ctx, err)) // a fixed-size struct cannot fail
	}
	return b
}

// Input is one BPF_PROG_TEST_RUN.
type Input struct {
	Data []byte
	// Context is Skb, XDPMD, their Encode'd bytes, or nil for none (the kernel then runs a TC
	// program on the loopback interface).
	Context any
	// ContextOut, a pointer to a context, receives the context after the run.
	ContextOut any
	// DataOut, when set, receives the frame after the run; it must be large enough.
	DataOut []byte
	// Repeat runs the program that many times on the same packet (0: once).
	Repeat uint32
}

// Result is what a run returned.
type Result struct {
	Ret  uint32 // the verdict of the last run
	Data []byte // DataOut cut to the frame's length
	// PerRun is the kernel's mean time per run, without the syscall.
	PerRun time.Duration
}

// attr is the BPF_PROG_TEST_RUN part of union bpf_attr.
type attr struct {
	ProgFD, Retval, DataSizeIn, DataSizeOut uint32
	DataIn, DataOut                         uint64
	Repeat, Duration                        uint32
	CtxSizeIn, CtxSizeOut                   uint32
	CtxIn, CtxOut                           uint64
	Flags, CPU, BatchSize                   uint32
	_                                       uint32
}

const bpfProgTestRun = 10 // enum bpf_cmd

// Run runs prog as in describes.
func Run(prog *ebpf.Program, in Input) (Result, error) {
	if len(in.Data) == 0 {
		return Result{}, errors.New("progrun: no data")
	}
	var ctx, ctxOut []byte
	switch c := in.Context.(type) {
	case nil:
	case []byte:
		ctx = c
	default:
		ctx = Encode(c)
	}
	if in.ContextOut != nil {
		ctxOut = make([]byte, binary.Size(in.ContextOut))
	}
	a := attr{
		ProgFD: uint32(prog.FD()), Repeat: in.Repeat,
		DataSizeIn: uint32(len(in.Data)), DataIn: ptr(in.Data),
		DataSizeOut: uint32(len(in.DataOut)), DataOut: ptr(in.DataOut),
		CtxSizeIn: uint32(len(ctx)), CtxIn: ptr(ctx),
		CtxSizeOut: uint32(len(ctxOut)), CtxOut: ptr(ctxOut),
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgTestRun, uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a))
		runtime.KeepAlive(in)
		runtime.KeepAlive(ctx)
		runtime.KeepAlive(ctxOut)
		if errno == unix.EINTR {
			continue // a signal cut a long run short: the kernel restarts it from scratch
		}
		if errno != 0 {
			return Result{}, fmt.Errorf("BPF_PROG_TEST_RUN of %v: %w", prog, errno)
		}
		break
	}
	r := Result{Ret: a.Retval, PerRun: time.Duration(a.Duration)}
	if in.DataOut != nil {
		if int(a.DataSizeOut) > len(in.DataOut) {
			return r, fmt.Errorf("BPF_PROG_TEST_RUN of %v: %d bytes out, more than the %d-byte buffer", prog, a.DataSizeOut, len(in.DataOut))
		}
		r.Data = in.DataOut[:a.DataSizeOut]
	}
	if in.ContextOut != nil {
		if _, err := binary.Decode(ctxOut, binary.NativeEndian, in.ContextOut); err != nil {
			return r, fmt.Errorf("decode context: %w", err)
		}
	}
	return r, nil
}

func ptr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))
}

// Trivial loads a program of typ (SchedCLS or XDP) that only passes the packet: what a run
// costs without any program work, to subtract from a program's figure. The caller closes it.
func Trivial(typ ebpf.ProgramType) (*ebpf.Program, error) {
	ret := int32(TCOK)
	if typ == ebpf.XDP {
		ret = XDPPass
	}
	return Returning(typ, ret)
}

// Returning loads a program of typ that returns ret. The caller closes it.
func Returning(typ ebpf.ProgramType, ret int32) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: typ, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ret), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("program of type %v returning %d: %w", typ, ret, err)
	}
	return prog, nil
}
