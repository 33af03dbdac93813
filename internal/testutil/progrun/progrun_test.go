package progrun

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// TestContextLayout checks Skb and XDPMD against the kernel's struct __sk_buff and xdp_md.
func TestContextLayout(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("kernel BTF: %v", err)
	}
	for _, c := range []struct {
		kernel string
		ours   any
		want   map[string]uint32 // offsets of the fields callers set or read
	}{
		{"__sk_buff", Skb{}, map[string]uint32{"mark": 8, "ifindex": 40, "gso_segs": 164, "hwtstamp": 184}},
		{"xdp_md", XDPMD{}, map[string]uint32{"data_end": 4, "ingress_ifindex": 12}},
	} {
		var s *btf.Struct
		if err := spec.TypeByName(c.kernel, &s); err != nil {
			t.Fatal(err)
		}
		if got := binary.Size(c.ours); uint32(got) != s.Size {
			t.Errorf("%T is %d bytes, %s %d", c.ours, got, c.kernel, s.Size)
		}
		for _, m := range s.Members {
			if off, ok := c.want[m.Name]; ok && m.Offset.Bytes() != off {
				t.Errorf("%s.%s at %d, %T has it at %d", c.kernel, m.Name, m.Offset.Bytes(), c.ours, off)
			}
		}
	}
}

// TestRun runs a trivial program with a context, an output buffer and a repeat count.
func TestRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading a program needs root")
	}
	prog, err := Returning(ebpf.SchedCLS, TCShot)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	frame := make([]byte, 64)
	frame[63] = 0xaa
	ctx := TC(1)
	ctx.Mark = 0x42
	var out Skb
	r, err := Run(prog, Input{Data: frame, Context: ctx, ContextOut: &out, DataOut: make([]byte, 128), Repeat: 100})
	if err != nil {
		t.Fatal(err)
	}
	if r.Ret != TCShot {
		t.Errorf("verdict %d, want %d", r.Ret, TCShot)
	}
	if !bytes.Equal(r.Data, frame) {
		t.Errorf("frame out %x, want %x", r.Data, frame)
	}
	if out.Mark != 0x42 {
		t.Errorf("mark out %#x, want 0x42", out.Mark)
	}
	if r.PerRun <= 0 {
		t.Errorf("no duration per run: %v", r.PerRun)
	}
	// Pre-encoded context, no output: what the benchmarks' loops do.
	if _, err := Run(prog, Input{Data: frame, Context: Encode(ctx)}); err != nil {
		t.Fatal(err)
	}
}
