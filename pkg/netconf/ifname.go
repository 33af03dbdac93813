package netconf

import (
	"fmt"
	"strconv"
)

// AssignInterfaceNames sets IfName on every element.
//
// An element with Interface keeps it. The others get "net<N>" the way Multus
// numbers them, N being the element's position in the delegate list: first
// for elements[0], first+1 for elements[1], and so on, whether or not the
// earlier elements named their interface. Multus starts at 1 because the
// cluster network (eth0) is delegate 0; when defaultNetworks are attached
// they come before the annotation's networks, so the engine passes
// 1+len(defaultNetworks).
//
// Where Multus would hand out a name that is already taken (an explicit
// Interface of any element, a reserved name, or an earlier automatic name)
// and then fail at ADD, we skip to the next free number instead: every
// selection Multus accepts gets exactly the names Multus gives it, and the
// ones it rejects for that reason work.
//
// reserved lists names used outside the selection, e.g. the cluster
// network's CNI_IFNAME and the default networks' names. Two elements asking
// for the same Interface, or an element asking for a reserved name, is an
// error (*types.Error, code 7).
func AssignInterfaceNames(elems []NetworkSelectionElement, first int, reserved ...string) error {
	if first < 0 {
		return invalidError("interface numbering cannot start at %d", first)
	}
	owner := make(map[string]int, len(elems)+len(reserved)) // name -> element, -1 if reserved
	for _, r := range reserved {
		owner[r] = -1
	}
	for i := range elems {
		name := elems[i].Interface
		if name == "" {
			continue
		}
		if err := ValidateInterfaceName(name); err != nil {
			return invalidError(`%s: "interface": %v`, elemWhere(i, &elems[i]), err)
		}
		switch j, taken := owner[name]; {
		case taken && j < 0:
			return invalidError(`%s: "interface": %q is already used by the pod's cluster or default network`, elemWhere(i, &elems[i]), name)
		case taken:
			return invalidError(`%s: "interface": %q is also requested by element %d`, elemWhere(i, &elems[i]), name, j)
		}
		owner[name] = i
	}
	// Numbers in [first+i, next) are all taken: the previous automatic
	// element scanned them from a smaller start and took the last one. So
	// the scan resumes at next, and the whole loop stays linear even when
	// many elements skip the same explicit names.
	next := first
	for i := range elems {
		if elems[i].Interface != "" {
			elems[i].IfName = elems[i].Interface
			continue
		}
		n := max(first+i, next)
		for {
			name := "net" + strconv.Itoa(n)
			if len(name) > MaxInterfaceNameLen {
				return invalidError("%s: automatic interface name %q is too long", elemWhere(i, &elems[i]), name)
			}
			if _, taken := owner[name]; !taken {
				elems[i].IfName = name
				owner[name] = i
				break
			}
			n++
		}
		next = n + 1
	}
	return nil
}

// String is "namespace/name@ifname", handy in logs.
func (e NetworkSelectionElement) String() string {
	return fmt.Sprintf("%s/%s@%s", e.Namespace, e.Name, e.IfName)
}
