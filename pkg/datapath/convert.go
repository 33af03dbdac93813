package datapath

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Builds of the programs may lay a map's key or value out differently. Every map carries the BTF
// of its key and value (the kernel keeps it with the map, so a pin describes itself), and an
// entry is carried from one layout to another field by field, by name: a field both layouts have
// keeps its value (integers widened or narrowed, arrays cut or zero-filled), a field only the
// destination has starts at zero, a field only the source has is dropped. So a field whose
// meaning changes must take a new name (bpf/lib/version.h).

// sameLayout tells whether values of a and b are the same bytes with the same meaning, so one
// can be used as the other with no conversion.
func sameLayout(a, b btf.Type) bool {
	a, b = btf.UnderlyingType(a), btf.UnderlyingType(b)
	switch a := a.(type) {
	case *btf.Int:
		b, ok := b.(*btf.Int)
		return ok && a.Size == b.Size && a.Encoding == b.Encoding
	case *btf.Enum:
		b, ok := b.(*btf.Enum)
		return ok && a.Size == b.Size && a.Signed == b.Signed
	case *btf.Pointer:
		_, ok := b.(*btf.Pointer)
		return ok
	case *btf.Array:
		b, ok := b.(*btf.Array)
		return ok && a.Nelems == b.Nelems && sameLayout(a.Type, b.Type)
	case *btf.Struct:
		b, ok := b.(*btf.Struct)
		return ok && a.Size == b.Size && sameMembers(a.Members, b.Members)
	case *btf.Union:
		b, ok := b.(*btf.Union)
		return ok && a.Size == b.Size && sameMembers(a.Members, b.Members)
	case *btf.Datasec:
		b, ok := b.(*btf.Datasec)
		if !ok || a.Size != b.Size || len(a.Vars) != len(b.Vars) {
			return false
		}
		for i, va := range a.Vars {
			vb := b.Vars[i]
			if va.Offset != vb.Offset || va.Size != vb.Size || varName(va) != varName(vb) ||
				!sameLayout(varType(va), varType(vb)) {
				return false
			}
		}
		return true
	}
	return false
}

func sameMembers(a, b []btf.Member) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Offset != b[i].Offset || a[i].BitfieldSize != b[i].BitfieldSize ||
			!sameLayout(a[i].Type, b[i].Type) {
			return false
		}
	}
	return true
}

func varName(v btf.VarSecinfo) string {
	if bv, ok := v.Type.(*btf.Var); ok {
		return bv.Name
	}
	return ""
}

func varType(v btf.VarSecinfo) btf.Type {
	if bv, ok := v.Type.(*btf.Var); ok {
		return bv.Type
	}
	return v.Type
}

// convert writes into dst, laid out as dt and zeroed by the caller, what src (laid out as st)
// holds, field by field. It fails only when a buffer is shorter than its type.
func convert(dst []byte, dt btf.Type, src []byte, st btf.Type) error {
	dsize, err := btf.Sizeof(dt)
	if err != nil {
		return err
	}
	ssize, err := btf.Sizeof(st)
	if err != nil {
		return err
	}
	if len(dst) < dsize || len(src) < ssize {
		return fmt.Errorf("convert: %d-byte %s from %d-byte %s: buffers of %d and %d bytes", dsize, dt, ssize, st, len(dst), len(src))
	}
	convertInto(dst[:dsize], btf.UnderlyingType(dt), src[:ssize], btf.UnderlyingType(st))
	return nil
}

// convertInto is convert on buffers of exactly the types' sizes and resolved types.
func convertInto(dst []byte, dt btf.Type, src []byte, st btf.Type) {
	if sameLayout(dt, st) {
		copy(dst, src)
		return
	}
	switch d := dt.(type) {
	case *btf.Int, *btf.Enum:
		switch st.(type) {
		case *btf.Int, *btf.Enum:
			putUint(dst, getUint(src))
		}
	case *btf.Array:
		s, ok := st.(*btf.Array)
		if !ok {
			return
		}
		de, se := btf.UnderlyingType(d.Type), btf.UnderlyingType(s.Type)
		dn, _ := btf.Sizeof(de)
		sn, _ := btf.Sizeof(se)
		for i := 0; i < int(min(d.Nelems, s.Nelems)) && dn > 0 && sn > 0; i++ {
			convertInto(dst[i*dn:(i+1)*dn], de, src[i*sn:(i+1)*sn], se)
		}
	case *btf.Struct:
		convertMembers(dst, d.Members, src, st)
	case *btf.Union:
		convertMembers(dst, d.Members, src, st)
	case *btf.Datasec:
		s, ok := st.(*btf.Datasec)
		if !ok {
			return
		}
		for _, dv := range d.Vars {
			for _, sv := range s.Vars {
				if varName(dv) == varName(sv) && varName(dv) != "" {
					convertInto(dst[dv.Offset:dv.Offset+dv.Size], btf.UnderlyingType(varType(dv)),
						src[sv.Offset:sv.Offset+sv.Size], btf.UnderlyingType(varType(sv)))
				}
			}
		}
	}
}

// convertMembers fills the named members of a struct or union from st's members of the same
// name. Bit fields are carried only where both layouts place them alike.
func convertMembers(dst []byte, members []btf.Member, src []byte, st btf.Type) {
	var from []btf.Member
	switch s := st.(type) {
	case *btf.Struct:
		from = s.Members
	case *btf.Union:
		from = s.Members
	default:
		return
	}
	for _, dm := range members {
		for _, sm := range from {
			if dm.Name != sm.Name || dm.Name == "" || dm.BitfieldSize != 0 || sm.BitfieldSize != 0 {
				continue
			}
			dmt, smt := btf.UnderlyingType(dm.Type), btf.UnderlyingType(sm.Type)
			dn, err1 := btf.Sizeof(dmt)
			sn, err2 := btf.Sizeof(smt)
			do, so := int(dm.Offset.Bytes()), int(sm.Offset.Bytes())
			if err1 != nil || err2 != nil || do+dn > len(dst) || so+sn > len(src) {
				continue
			}
			convertInto(dst[do:do+dn], dmt, src[so:so+sn], smt)
		}
	}
}

// getUint and putUint read and write an integer of 1, 2, 4 or 8 bytes in the host's order (the
// programs'), truncating a wider value.
func getUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.NativeEndian.Uint16(b))
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	case 8:
		return binary.NativeEndian.Uint64(b)
	}
	return 0
}

func putUint(b []byte, v uint64) {
	switch len(b) {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.NativeEndian.PutUint16(b, uint16(v))
	case 4:
		binary.NativeEndian.PutUint32(b, uint32(v))
	case 8:
		binary.NativeEndian.PutUint64(b, v)
	}
}

// mapTypes returns the BTF types of m's key and value, as the build that created m declared
// them: the kernel keeps them with the map.
func mapTypes(m *ebpf.Map) (key, value btf.Type, err error) {
	info := new(bpfMapInfo) // on the heap: the kernel writes it through a pointer inside attr
	attr := struct {
		fd      uint32
		infoLen uint32
		info    uint64
	}{uint32(m.FD()), uint32(unsafe.Sizeof(*info)), uint64(uintptr(unsafe.Pointer(info)))}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_OBJ_GET_INFO_BY_FD, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(info)
	runtime.KeepAlive(m)
	if errno != 0 {
		return nil, nil, fmt.Errorf("map info: %w", errno)
	}
	if info.BTFID == 0 || info.BTFValueTypeID == 0 {
		return nil, nil, fmt.Errorf("map %q carries no BTF", m.String())
	}
	h, err := btf.NewHandleFromID(btf.ID(info.BTFID))
	if err != nil {
		return nil, nil, fmt.Errorf("map BTF: %w", err)
	}
	defer h.Close()
	spec, err := h.Spec(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("map BTF: %w", err)
	}
	if info.BTFKeyTypeID != 0 {
		if key, err = spec.TypeByID(btf.TypeID(info.BTFKeyTypeID)); err != nil {
			return nil, nil, fmt.Errorf("map key type: %w", err)
		}
	}
	if value, err = spec.TypeByID(btf.TypeID(info.BTFValueTypeID)); err != nil {
		return nil, nil, fmt.Errorf("map value type: %w", err)
	}
	return key, value, nil
}

// bpfMapInfo is the head of struct bpf_map_info (linux/bpf.h), up to the BTF type IDs, which
// cilium/ebpf's MapInfo does not expose.
type bpfMapInfo struct {
	Type, ID, KeySize, ValueSize, MaxEntries, MapFlags uint32
	Name                                               [16]byte
	Ifindex, BTFVmlinuxValueTypeID                     uint32
	NetnsDev, NetnsIno                                 uint64
	BTFID, BTFKeyTypeID, BTFValueTypeID                uint32
	_                                                  uint32
}
