// Package perpkt measures the cost of Steer's BPF programs per packet with BPF_PROG_TEST_RUN:
// every branch (primary-path miss, pinned reply, source steering, multicast, ingress learning)
// on flow tables of several sizes, cold lookups in a full table, and how the LRU flow table
// behaves when more flows arrive than it holds.
package perpkt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// testRunAttr is the BPF_PROG_TEST_RUN part of union bpf_attr. cilium/ebpf's Program.Run does
// not return the kernel's duration and Program.Benchmark takes no context (the interface a TC
// program runs on), so the command is issued here.
type testRunAttr struct {
	ProgFD, Retval, DataSizeIn, DataSizeOut uint32
	DataIn, DataOut                         uint64
	Repeat, Duration                        uint32
	CtxSizeIn, CtxSizeOut                   uint32
	CtxIn, CtxOut                           uint64
	Flags, CPU, BatchSize                   uint32
	_                                       uint32
}

const bpfProgTestRun = 10 // enum bpf_cmd

// testRun runs the program fd repeat times on data with the context ctx (raw bytes, may be
// empty) in the calling thread's network namespace. It returns the verdict of the last run and
// the kernel's mean time per run in nanoseconds.
func testRun(fd int, data, ctx []byte, repeat uint32) (retval, ns uint32, err error) {
	attr := testRunAttr{ProgFD: uint32(fd), DataSizeIn: uint32(len(data)), Repeat: repeat, CtxSizeIn: uint32(len(ctx))}
	attr.DataIn = uint64(uintptr(unsafe.Pointer(&data[0])))
	if len(ctx) > 0 {
		attr.CtxIn = uint64(uintptr(unsafe.Pointer(&ctx[0])))
	}
	for {
		_, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgTestRun, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		runtime.KeepAlive(data)
		runtime.KeepAlive(ctx)
		if errno == unix.EINTR {
			continue // a signal cut a long run short: the kernel restarts it from scratch
		}
		if errno != 0 {
			return 0, 0, fmt.Errorf("BPF_PROG_TEST_RUN: %w", errno)
		}
		return attr.Retval, attr.Duration, nil
	}
}

// skbContext is the prefix of struct __sk_buff that BPF_PROG_TEST_RUN accepts for a TC
// program; only ifindex is set: the programs find their interface's slot by it, and the kernel
// sets skb->dev from it.
type skbContext struct {
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

// xdpContext is struct xdp_md.
type xdpContext struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

func tcContext(ifindex int) []byte {
	return encode(skbContext{Ifindex: uint32(ifindex)})
}

func xdpCtx(ifindex, frameLen int) []byte {
	return encode(xdpContext{DataEnd: uint32(frameLen), IngressIfindex: uint32(ifindex)})
}

func encode(v any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, v); err != nil {
		panic(err) // fixed-size structs above: cannot fail
	}
	return b.Bytes()
}
