package datapath

// The Service proxy's maps (bpf/lib/service.h): programming a pod's frontends and reading them
// back.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/service"
)

// Services programs pods' Service frontends into their pinned maps: it implements
// service.Programmer for the pods Attach attached under Layout.
type Services struct {
	Layout bpffs.Layout // zero: bpffs.Default()
}

var _ service.Programmer = Services{}

// programMu serialises Program: loading a pod's proxy creates and pins its maps once.
var programMu sync.Mutex

// serviceMaps are one pod's Service maps: the four its programs use from ADD on, and the
// proxy's own, created with the proxy at the pod's first Program.
type serviceMaps struct {
	state, frontends, backendAddrs, progs              *ebpf.Map
	slots, backends, conns, revnat, affinity, counters *ebpf.Map
}

// svcMapTable names each map in the objects and its pin.
var svcMapTable = []struct {
	name, pin string
	shared    bool // there from ADD on
	field     func(*serviceMaps) **ebpf.Map
}{
	{svcMapSteerSvcState, bpffs.SvcStatePin, true, func(m *serviceMaps) **ebpf.Map { return &m.state }},
	{svcMapSteerSvcFrontends, bpffs.SvcFrontendsPin, true, func(m *serviceMaps) **ebpf.Map { return &m.frontends }},
	{svcMapSteerSvcBackendAddrs, bpffs.SvcBackendAddrsPin, true, func(m *serviceMaps) **ebpf.Map { return &m.backendAddrs }},
	{svcMapSteerSvcProgs, bpffs.SvcProgsPin, true, func(m *serviceMaps) **ebpf.Map { return &m.progs }},
	{svcMapSteerSvcSlots, bpffs.SvcSlotsPin, false, func(m *serviceMaps) **ebpf.Map { return &m.slots }},
	{svcMapSteerSvcBackends, bpffs.SvcBackendsPin, false, func(m *serviceMaps) **ebpf.Map { return &m.backends }},
	{svcMapSteerSvcConns, bpffs.SvcConnsPin, false, func(m *serviceMaps) **ebpf.Map { return &m.conns }},
	{svcMapSteerSvcRevnat, bpffs.SvcRevNATPin, false, func(m *serviceMaps) **ebpf.Map { return &m.revnat }},
	{svcMapSteerSvcAffinity, bpffs.SvcAffinityPin, false, func(m *serviceMaps) **ebpf.Map { return &m.affinity }},
	{svcMapSteerSvcCounters, bpffs.SvcCountersPin, false, func(m *serviceMaps) **ebpf.Map { return &m.counters }},
}

func (m *serviceMaps) Close() {
	for _, e := range svcMapTable {
		if p := e.field(m); *p != nil {
			(*p).Close()
			*p = nil
		}
	}
}

// proxyLoaded tells whether the proxy's maps are there (it is loaded with them).
func (m *serviceMaps) proxyLoaded() bool {
	for _, e := range svcMapTable {
		if !e.shared && *e.field(m) == nil {
			return false
		}
	}
	return true
}

// sharedServiceMaps are the Service maps of a loaded collection (the caller keeps it open).
func sharedServiceMaps(o *Objects) *serviceMaps {
	return &serviceMaps{state: o.SteerSvcState, frontends: o.SteerSvcFrontends, backendAddrs: o.SteerSvcBackendAddrs, progs: o.SteerSvcProgs}
}

// ErrNoServiceMaps is returned for a pod attached without the Service maps (by an earlier
// version of Steer): it cannot proxy Services until it is attached again.
var ErrNoServiceMaps = errors.New("no Service maps pinned")

// openServiceMaps opens a container's pinned Service maps: the shared ones must be there, the
// proxy's are when it was loaded.
func openServiceMaps(dir string, readOnly bool) (*serviceMaps, error) {
	m := &serviceMaps{}
	for _, e := range svcMapTable {
		path := filepath.Join(dir, e.pin)
		mp, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: readOnly})
		if errors.Is(err, os.ErrNotExist) {
			if !e.shared {
				continue
			}
			m.Close()
			return nil, fmt.Errorf("%s: %w", dir, ErrNoServiceMaps)
		}
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		*e.field(m) = mp
	}
	return m, nil
}

// readLoopMark reads the loop mark a pod's programs were loaded with from its config pin: the
// proxy marks what it redirects with the same bit.
func readLoopMark(path string) (uint32, error) {
	spec, err := parsedSpec()
	if err != nil {
		return 0, err
	}
	vs, ok := spec.Variables[steerVarSteerLoopMark]
	if !ok {
		return 0, fmt.Errorf("steer object has no variable %s", steerVarSteerLoopMark)
	}
	m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return 0, fmt.Errorf("open config: %w", err)
	}
	defer m.Close()
	raw := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &raw); err != nil {
		return 0, fmt.Errorf("read config: %w", err)
	}
	if int(vs.Offset)+4 > len(raw) {
		return 0, fmt.Errorf("config of %d bytes has no loop mark at offset %d", len(raw), vs.Offset)
	}
	return binary.NativeEndian.Uint32(raw[vs.Offset:]), nil
}

// parsedSvcSpec parses the proxy's object once per process. It leaves out the interface table
// the shared headers declare: the proxy reads none, and would create an empty one per load.
var parsedSvcSpec = sync.OnceValues(func() (*ebpf.CollectionSpec, error) {
	spec, err := loadSvc()
	if err != nil {
		return nil, err
	}
	delete(spec.Maps, ifacesMap)
	for name, v := range spec.Variables {
		if v.SectionName == ifacesMap {
			delete(spec.Variables, name)
		}
	}
	return spec, nil
})

// loadProxy loads the proxy's programs over m's maps, creating the proxy's maps m lacks, and
// puts the programs in the pod's tail-call array. loopMark is the pod's (0: the default). The
// entries of carry (by map name: maps an older proxy left in another layout) are carried into
// the maps created in their place, before the programs are installed and again after, for what
// the older programs wrote meanwhile. It returns the names of the maps it created.
func loadProxy(m *serviceMaps, loopMark uint32, carry map[string]*ebpf.Map) ([]string, error) {
	parsed, err := parsedSvcSpec()
	if err != nil {
		return nil, err
	}
	spec := parsed.Copy()
	if loopMark != 0 {
		if err := spec.Variables[steerVarSteerLoopMark].Set(loopMark); err != nil {
			return nil, fmt.Errorf("set loop mark: %w", err)
		}
	}
	if err := foldVariables(spec); err != nil {
		return nil, err
	}
	opts := ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{}}
	for _, e := range svcMapTable {
		if p := e.field(m); *p != nil {
			opts.MapReplacements[e.name] = *p
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, opts)
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load the Service proxy: %+v", verr)
		}
		return nil, fmt.Errorf("load the Service proxy: %w", err)
	}
	defer coll.Close()
	carryAll := func() error {
		for name, old := range carry {
			if err := carryInto(coll.Maps[name], spec.Maps[name], name, old); err != nil {
				return fmt.Errorf("carry %s: %w", name, err)
			}
		}
		return nil
	}
	if err := carryAll(); err != nil {
		return nil, err
	}
	var created []string
	for _, e := range svcMapTable {
		if p := e.field(m); *p == nil {
			*p = coll.DetachMap(e.name)
			created = append(created, e.name)
		}
	}
	for key, name := range map[uint32]string{
		uint32(svcSteerSvcProgSTEER_SVC_PROG_EGRESS):  svcProgSteerSvcEgress,
		uint32(svcSteerSvcProgSTEER_SVC_PROG_INGRESS): svcProgSteerSvcIngress,
	} {
		if err := m.progs.Update(key, coll.Programs[name], ebpf.UpdateAny); err != nil {
			return created, fmt.Errorf("install %s: %w", name, err)
		}
	}
	if info, err := coll.Programs[svcProgSteerSvcEgress].Info(); err == nil {
		loadedProxyTag.Store(&info.Tag)
	}
	for _, e := range svcMapTable {
		if old, ok := carry[e.name]; ok {
			if err := carryInto(*e.field(m), spec.Maps[e.name], e.name, old); err != nil {
				return created, fmt.Errorf("carry %s: %w", e.name, err)
			}
		}
	}
	return created, nil
}

// olderProxyMaps takes out of m the proxy's maps an older proxy left in a layout this build's
// does not read, and returns them by map name: the proxy is loaded again with new ones.
func olderProxyMaps(m *serviceMaps) (map[string]*ebpf.Map, error) {
	parsed, err := parsedSvcSpec()
	if err != nil {
		return nil, err
	}
	older := map[string]*ebpf.Map{}
	for _, e := range svcMapTable {
		if p := e.field(m); !e.shared && *p != nil && !compatible(*p, parsed.Maps[e.name]) {
			older[e.name] = *p
			*p = nil
		}
	}
	return older, nil
}

// loadedProxyTag is the kernel's tag of the proxy's egress program as this process loads it
// (the same for every pod: their loop marks live in .rodata, which the tag leaves out); nil
// until it loaded one.
var loadedProxyTag atomic.Pointer[string]

// proxyTag returns loadedProxyTag, learning it when this process has loaded no proxy yet by
// loading one that no pod uses (loadProxy records it): the kernel computes the tag over the
// linked program, which the spec cannot give. Once per process, instead of reloading the proxy
// of every pod that has one at steerd's start.
func proxyTag() (string, error) {
	if tag := loadedProxyTag.Load(); tag == nil {
		var m serviceMaps
		_, err := loadProxy(&m, 0, nil)
		m.Close()
		if err != nil {
			return "", err
		}
	}
	if tag := loadedProxyTag.Load(); tag != nil {
		return *tag, nil
	}
	return "", errors.New("the Service proxy's tag is unknown")
}

// isLoadedProxy tells whether prog, a pod's proxy egress program, is this build's: an older
// build's proxy would not keep what this build's programs count on (the ticks of
// svc_udp_pair_recent). When it cannot tell, it says no: the proxy is loaded again.
func isLoadedProxy(prog *ebpf.Program) bool {
	info, err := prog.Info()
	if err != nil {
		return false
	}
	tag, err := proxyTag()
	return err == nil && info.Tag == tag
}

// ensureProxy loads the proxy of the pod pinned in dir unless this build's programs are in
// place, pinning the maps it creates (over an older proxy's, whose entries it carries over). A
// proxy of another build whose maps this build reads has its programs replaced, its maps and
// connections kept.
func ensureProxy(m *serviceMaps, dir string, loopMark uint32) error {
	older, err := olderProxyMaps(m)
	if err != nil {
		return err
	}
	defer func() {
		for _, old := range older {
			old.Close()
		}
	}()
	var prog *ebpf.Program
	if len(older) == 0 && m.proxyLoaded() && m.progs.Lookup(uint32(svcSteerSvcProgSTEER_SVC_PROG_EGRESS), &prog) == nil {
		current := isLoadedProxy(prog)
		prog.Close()
		if current {
			return nil
		}
	}
	created, err := loadProxy(m, loopMark, older)
	for _, e := range svcMapTable {
		if slices.Contains(created, e.name) {
			if perr := pinOver(*e.field(m), filepath.Join(dir, e.pin)); perr != nil {
				err = errors.Join(err, fmt.Errorf("pin %s: %w", e.pin, perr))
			}
		}
	}
	return err
}

// pinOver pins mp at path, replacing what is pinned there in one rename.
func pinOver(mp *ebpf.Map, path string) error {
	tmp := path + "-new" // bpffs refuses names with a dot
	_ = os.Remove(tmp)
	if err := mp.Pin(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// Program installs a pod's complete set of Service entries in its pinned maps, replacing what
// it had: see programServices.
func (s Services) Program(containerID string, entries []service.Entry) error {
	layout := s.Layout
	if layout.Root == "" {
		layout = bpffs.Default()
	}
	dir, err := layout.Dir(containerID)
	if err != nil {
		return err
	}
	programMu.Lock() // one writer of a pod's maps and pins at a time
	defer programMu.Unlock()
	cfg, err := readConfig(dir, true)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("container %s: %w", containerID, service.ErrNoDatapath)
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", containerID, err)
	}
	m, err := openServiceMaps(dir, false)
	if err != nil {
		return fmt.Errorf("container %s: %w", containerID, err)
	}
	defer m.Close()
	if err := checkReverseHooks(dir, entries); err != nil {
		return fmt.Errorf("container %s: %w", containerID, err)
	}
	if len(entries) > 0 || m.proxyLoaded() {
		mark, err := readLoopMark(filepath.Join(dir, bpffs.ConfigPin))
		if err != nil {
			return fmt.Errorf("container %s: %w", containerID, err)
		}
		if err := ensureProxy(m, dir, mark); err != nil {
			return fmt.Errorf("container %s: %w", containerID, err)
		}
	}
	if err := programServices(m, cfg.Interfaces, entries); err != nil {
		return fmt.Errorf("container %s: %w", containerID, err)
	}
	return nil
}

// ProgramServices installs entries in a collection Load returned, as Services.Program does in a
// pod's pins, for a collection run without being attached (the per-packet measurements): the
// proxy is loaded over o's maps at the first call, with maps of its own that o.Close closes.
// itfs are the interfaces of o's Config.
func (o *Objects) ProgramServices(itfs []Interface, entries []service.Entry) error {
	if o.proxy == nil {
		m := sharedServiceMaps(o)
		if _, err := loadProxy(m, 0, nil); err != nil {
			closeProxyMaps(m)
			return err
		}
		o.proxy = m
	}
	return programServices(o.proxy, itfs, entries)
}

// closeProxyMaps closes the maps of m the proxy created, leaving the collection's.
func closeProxyMaps(m *serviceMaps) {
	for _, e := range svcMapTable {
		if p := e.field(m); !e.shared && *p != nil {
			(*p).Close()
			*p = nil
		}
	}
}

// checkReverseHooks refuses entries leaving by an interface whose replies no TC ingress
// program reverse-NATs: an interface Steer does not steer, or one it learns on with XDP.
// Legacy TC attachments pin no links and are not checked.
func checkReverseHooks(dir string, entries []service.Entry) error {
	links, _ := filepath.Glob(filepath.Join(dir, "link-*"))
	if len(links) == 0 {
		return nil
	}
	for _, e := range entries {
		if !slices.Contains(links, filepath.Join(dir, bpffs.LinkPin(e.IfName, bpffs.HookIngress))) {
			return fmt.Errorf("service %s: interface %q has no TC ingress program to reverse-NAT the replies (not steered, or learning with XDP)", e.Service, e.IfName)
		}
	}
	return nil
}

// backendIdentity is what makes two backends one: the same id keeps their connections.
type backendIdentity struct {
	addr    netip.AddrPort
	ifindex uint32
}

// programServices writes entries into m, in an order that keeps every packet's view whole:
// backends first (new ids; the ids of backends that stay do not change), then each frontend's
// new backend set in the generation it does not use, then the frontend switched to it in one
// update; frontends and backends that left are deleted last, with the connections and
// affinities that pointed at a backend their frontend no longer has.
func programServices(m *serviceMaps, itfs []Interface, entries []service.Entry) error {
	byName := map[string]Interface{}
	for _, itf := range itfs {
		byName[itf.Name] = itf
	}
	want, err := encodeEntries(entries, byName)
	if err != nil {
		return err
	}

	// What the maps hold.
	oldFront := map[svcSvcKey]svcSvcFrontend{}
	if err := iterate(m.frontends, func(k svcSvcKey, v svcSvcFrontend) { oldFront[k] = v }); err != nil {
		return fmt.Errorf("read frontends: %w", err)
	}
	oldBack := map[uint32]svcSvcBackend{}
	ids := map[backendIdentity]uint32{}
	if err := iterate(m.backends, func(k uint32, v svcSvcBackend) {
		oldBack[k] = v
		ids[identityOf(v)] = k
	}); err != nil {
		return fmt.Errorf("read backends: %w", err)
	}

	// Backends: ids kept, new ones the lowest free.
	liveBack := map[uint32]bool{}
	nextBack := uint32(1)
	for i := range want {
		for j, b := range want[i].backends {
			id, ok := ids[identityOf(b)]
			if !ok {
				// Never the id of a backend that left: its connections would follow it.
				for _, taken := oldBack[nextBack]; taken || liveBack[nextBack]; _, taken = oldBack[nextBack] {
					nextBack++
				}
				if nextBack >= m.backends.MaxEntries() {
					return fmt.Errorf("more than %d distinct backends", m.backends.MaxEntries()-1)
				}
				id = nextBack
				ids[identityOf(b)] = id
			}
			want[i].backendIDs[j] = id
			if !liveBack[id] {
				liveBack[id] = true
				if oldBack[id] != b {
					if err := m.backends.Update(id, b, ebpf.UpdateAny); err != nil {
						return fmt.Errorf("write backend %d: %w", id, err)
					}
				}
			}
		}
	}

	// The backends' addresses, whose packets the pod's ingress diverts to the proxy: before any
	// frontend sends a connection there.
	oldAddrs := map[svcSvcKey]bool{}
	if err := iterate(m.backendAddrs, func(k svcSvcKey, _ uint32) { oldAddrs[k] = true }); err != nil {
		return fmt.Errorf("read backend addresses: %w", err)
	}
	liveAddrs := map[svcSvcKey]bool{}
	for _, w := range want {
		for _, b := range w.backends {
			k := svcSvcKey{Family: b.Family, Proto: w.key.Proto, Port: b.Port, Addr: b.Addr}
			liveAddrs[k] = true
			if !oldAddrs[k] {
				// No pair can use an address that was in no entry: its pairs went with it (see
				// purgeStale). Its value is the oldest tick, a second after boot, until the
				// proxy opens one: see svc_udp_pair_recent.
				if err := m.backendAddrs.Update(k, uint32(1), ebpf.UpdateAny); err != nil {
					return fmt.Errorf("write backend address: %w", err)
				}
			}
		}
	}

	// Frontends: ids kept, new ones the lowest free, their counters zeroed.
	usedIDs := map[uint32]bool{}
	for k, v := range oldFront {
		if _, ok := wantedKey(want, k); ok {
			usedIDs[v.Id] = true
		}
	}
	nextID := uint32(0)
	zero := make([]svcSteerSvcCounter, ebpf.MustPossibleCPU())
	for i := range want {
		w := &want[i]
		old, existed := oldFront[w.key]
		if existed {
			w.value.Id, w.value.Gen = old.Id, old.Gen^1
		} else {
			for usedIDs[nextID] {
				nextID++
			}
			if nextID >= m.counters.MaxEntries() {
				return fmt.Errorf("more than %d frontends", m.counters.MaxEntries())
			}
			w.value.Id = nextID
			usedIDs[nextID] = true
			if err := m.counters.Update(nextID, zero, ebpf.UpdateAny); err != nil {
				return fmt.Errorf("reset counters %d: %w", nextID, err)
			}
		}
		for j, id := range w.backendIDs {
			k := svcSvcSlotKey{Id: w.value.Id, Gen: uint16(w.value.Gen), Index: uint16(j)}
			if err := m.slots.Update(k, id, ebpf.UpdateAny); err != nil {
				return fmt.Errorf("write backend slot: %w", err)
			}
		}
		if err := m.frontends.Update(w.key, w.value, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("write frontend %s: %w", w.entry.Frontend.Addr, err)
		}
	}
	state := svcSteerSvcState{Frontends: uint32(len(want))}
	if err := m.state.Update(uint32(0), state, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write Service state: %w", err)
	}

	// What left.
	for k := range oldFront {
		if _, ok := wantedKey(want, k); !ok {
			if err := m.frontends.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete frontend: %w", err)
			}
		}
	}
	// Slots: each live frontend keeps its current generation, and the previous one up to its
	// count for packets that read the frontend before the switch (rewritten next time).
	members := map[uint32]map[uint32]bool{} // frontend id -> backend ids
	memberAddrs := map[uint32]map[netip.AddrPort]bool{}
	current := map[uint32]svcSvcFrontend{}
	for _, w := range want {
		current[w.value.Id] = w.value
		members[w.value.Id] = map[uint32]bool{}
		memberAddrs[w.value.Id] = map[netip.AddrPort]bool{}
		for j, id := range w.backendIDs {
			members[w.value.Id][id] = true
			memberAddrs[w.value.Id][identityOf(w.backends[j]).addr] = true
		}
	}
	var staleSlots []svcSvcSlotKey
	if err := iterate(m.slots, func(k svcSvcSlotKey, _ uint32) {
		fe, ok := current[k.Id]
		if !ok || k.Gen == uint16(fe.Gen) && k.Index >= fe.Count {
			staleSlots = append(staleSlots, k)
		}
	}); err != nil {
		return fmt.Errorf("read slots: %w", err)
	}
	for _, k := range staleSlots {
		if err := m.slots.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete slot: %w", err)
		}
	}
	for k := range oldAddrs {
		if !liveAddrs[k] {
			if err := m.backendAddrs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete backend address: %w", err)
			}
		}
	}
	for id := range oldBack {
		if !liveBack[id] {
			if err := m.backends.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("delete backend %d: %w", id, err)
			}
		}
	}
	return purgeStale(m, members, memberAddrs)
}

// purgeStale deletes the connections, reverse NATs and affinities whose frontend is gone or no
// longer has their backend: their next packet picks a backend anew, and a reply from a backend
// that left is the kernel's.
func purgeStale(m *serviceMaps, members map[uint32]map[uint32]bool, memberAddrs map[uint32]map[netip.AddrPort]bool) error {
	var conns []svcSvcConnKey
	if err := iterate(m.conns, func(k svcSvcConnKey, v svcSvcConn) {
		if !members[v.Frontend][v.Backend] {
			conns = append(conns, k)
		}
	}); err != nil {
		return fmt.Errorf("read connections: %w", err)
	}
	for _, k := range conns {
		if err := m.conns.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete connection: %w", err)
		}
	}
	var revs []svcSvcConnKey
	if err := iterate(m.revnat, func(k svcSvcConnKey, v svcSvcRev) {
		backend := netip.AddrPortFrom(addrFrom(k.Saddr.V6, k.Family), beToHost(k.Sport))
		if !memberAddrs[v.Id][backend] {
			revs = append(revs, k)
		}
	}); err != nil {
		return fmt.Errorf("read reverse NATs: %w", err)
	}
	for _, k := range revs {
		if err := m.revnat.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete reverse NAT: %w", err)
		}
	}
	var affs []svcSvcAffinityKey
	if err := iterate(m.affinity, func(k svcSvcAffinityKey, v svcSvcAffinity) {
		if !members[k.Id][v.Backend] {
			affs = append(affs, k)
		}
	}); err != nil {
		return fmt.Errorf("read affinities: %w", err)
	}
	for _, k := range affs {
		if err := m.affinity.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete affinity: %w", err)
		}
	}
	return nil
}

func iterate[K, V any](m *ebpf.Map, f func(K, V)) error {
	var (
		k K
		v V
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		f(k, v)
	}
	return it.Err()
}

// wantedFrontend is one entry encoded for the maps.
type wantedFrontend struct {
	entry      service.Entry
	key        svcSvcKey
	value      svcSvcFrontend // Id and Gen set by programServices
	backends   []svcSvcBackend
	backendIDs []uint32
}

func wantedKey(want []wantedFrontend, k svcSvcKey) (int, bool) {
	for i := range want {
		if want[i].key == k {
			return i, true
		}
	}
	return 0, false
}

func identityOf(b svcSvcBackend) backendIdentity {
	return backendIdentity{netip.AddrPortFrom(addrFrom(b.Addr.V6, b.Family), beToHost(b.Port)), b.Ifindex}
}

// encodeEntries checks entries and lays them out as the maps hold them.
func encodeEntries(entries []service.Entry, itfs map[string]Interface) ([]wantedFrontend, error) {
	var out []wantedFrontend
	seen := map[service.Frontend]bool{}
	for _, e := range entries {
		fe := e.Frontend
		name := fmt.Sprintf("service %s frontend %s/%s", e.Service, fe.Addr, fe.Proto)
		if !fe.Addr.IsValid() || fe.Addr.Port() == 0 || fe.Addr.Addr().Is4In6() {
			return nil, fmt.Errorf("%s: want a ClusterIP and a non-zero port", name)
		}
		if fe.Proto != service.TCP && fe.Proto != service.UDP {
			return nil, fmt.Errorf("%s: protocol %d, only TCP and UDP are proxied", name, fe.Proto)
		}
		if seen[fe] {
			return nil, fmt.Errorf("%s: given twice", name)
		}
		seen[fe] = true
		itf, ok := itfs[e.IfName]
		if !ok {
			return nil, fmt.Errorf("%s: the pod has no steered interface %q", name, e.IfName)
		}
		v4 := fe.Addr.Addr().Is4()
		saddr, bits, gw := itf.Addr6, itf.Bits6, itf.Gateway6
		if v4 {
			saddr, bits, gw = itf.Addr4, itf.Bits4, itf.Gateway4
		}
		if !saddr.IsValid() {
			return nil, fmt.Errorf("%s: interface %s has no address of the frontend's family", name, e.IfName)
		}
		if len(e.Backends) > 1<<16-1 {
			return nil, fmt.Errorf("%s: %d backends, at most %d", name, len(e.Backends), 1<<16-1)
		}
		if e.AffinityTimeout < 0 || e.AffinityTimeout > time.Duration(1<<32-1)*time.Second {
			return nil, fmt.Errorf("%s: affinity timeout %v out of range", name, e.AffinityTimeout)
		}
		if len(e.Service) >= len(svcSvcFrontend{}.Service) {
			return nil, fmt.Errorf("%s: name longer than %d bytes", name, len(svcSvcFrontend{}.Service)-1)
		}
		family := uint8(syscall.AF_INET6)
		if v4 {
			family = syscall.AF_INET
		}
		w := wantedFrontend{entry: e, key: svcSvcKey{Family: family, Proto: uint8(fe.Proto), Port: hostToBE(fe.Addr.Port())}}
		w.key.Addr.V6 = AddrBytes(fe.Addr.Addr())
		w.value.Count = uint16(len(e.Backends))
		w.value.Affinity = uint32((e.AffinityTimeout + time.Second - 1) / time.Second)
		for i := 0; i < len(e.Service); i++ {
			w.value.Service[i] = int8(e.Service[i])
		}
		for _, b := range e.Backends {
			if !b.IsValid() || b.Port() == 0 || b.Addr().Is4() != v4 || b.Addr().Is4In6() {
				return nil, fmt.Errorf("%s: backend %s: want an address of the frontend's family and a non-zero port", name, b)
			}
			be := svcSvcBackend{Ifindex: uint32(itf.Index), Port: hostToBE(b.Port()), Family: family}
			be.Addr.V6 = AddrBytes(b.Addr())
			be.Saddr.V6 = AddrBytes(saddr)
			// Through the gateway when off the interface's subnet; else the kernel's routes
			// through the interface (see nextHop).
			if nh := nextHop(b.Addr(), saddr, bits, gw); nh.IsValid() {
				be.NhFamily = family
				be.Nexthop.V6 = AddrBytes(nh)
			}
			w.backends = append(w.backends, be)
		}
		w.backendIDs = make([]uint32, len(w.backends))
		out = append(out, w)
	}
	return out, nil
}

// nextHop is the gateway a backend is reached through from the interface holding local in a
// subnet of bits, or none when it is on that subnet or the subnet is unknown: the program then
// lets the kernel route it through the interface, which resolves the backend itself on its
// subnet. A next hop the program names is right only once its neighbour entry is resolved: the
// kernel hands a packet queued for resolution back to the route the socket chose (eth0's), so a
// backend on the subnet, which the route through the interface reaches, is never named.
func nextHop(backend, local netip.Addr, bits int, gw netip.Addr) netip.Addr {
	if bits > 0 {
		if p, err := local.Prefix(bits); err == nil && p.Contains(backend) {
			return netip.Addr{}
		}
	}
	return gw
}

// hostToBE is a port in network byte order as a host integer reads it (a field of a key).
func hostToBE(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

func beToHost(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// ServiceFrontend is one frontend of a pod's Services as its pins hold it.
type ServiceFrontend struct {
	Service         string
	Frontend        service.Frontend
	Interface       string           // the interface its traffic leaves by
	Backends        []netip.AddrPort // in slot order
	AffinityTimeout time.Duration
	Counters        ServiceCounters
}

// ServiceCounters count a frontend's traffic since it was programmed.
type ServiceCounters struct {
	Packets, Bytes uint64 // both ways
	Connections    uint64 // sent to a backend
	NoBackend      uint64 // refused for want of a backend
}

// readServices reads a pod's frontends; a pod without Service maps has none.
func readServices(dir string, itfs []Interface) ([]ServiceFrontend, error) {
	m, err := openServiceMaps(dir, true)
	if errors.Is(err, ErrNoServiceMaps) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if !m.proxyLoaded() {
		return nil, nil // never programmed
	}
	return readServiceMaps(m, itfs)
}

// readServiceMaps reads the frontends in m.
func readServiceMaps(m *serviceMaps, itfs []Interface) ([]ServiceFrontend, error) {
	names := map[uint32]string{}
	for _, itf := range itfs {
		names[uint32(itf.Index)] = itf.Name
	}
	backends := map[uint32]svcSvcBackend{}
	if err := iterate(m.backends, func(k uint32, v svcSvcBackend) { backends[k] = v }); err != nil {
		return nil, fmt.Errorf("read backends: %w", err)
	}
	var out []ServiceFrontend
	var errs []error
	err := iterate(m.frontends, func(k svcSvcKey, v svcSvcFrontend) {
		sf := ServiceFrontend{
			Frontend:        service.Frontend{Addr: netip.AddrPortFrom(addrFrom(k.Addr.V6, k.Family), beToHost(k.Port)), Proto: service.Protocol(k.Proto)},
			AffinityTimeout: time.Duration(v.Affinity) * time.Second,
		}
		name := make([]byte, 0, len(v.Service))
		for _, c := range v.Service {
			if c == 0 {
				break
			}
			name = append(name, byte(c))
		}
		sf.Service = string(bytes.ToValidUTF8(name, []byte("?")))
		for i := range v.Count {
			var id uint32
			if err := m.slots.Lookup(svcSvcSlotKey{Id: v.Id, Gen: uint16(v.Gen), Index: i}, &id); err != nil {
				errs = append(errs, fmt.Errorf("frontend %s slot %d: %w", sf.Frontend.Addr, i, err))
				continue
			}
			b, ok := backends[id]
			if !ok {
				continue
			}
			sf.Backends = append(sf.Backends, identityOf(b).addr)
			sf.Interface = names[b.Ifindex]
		}
		var perCPU []svcSteerSvcCounter
		if err := m.counters.Lookup(v.Id, &perCPU); err != nil {
			errs = append(errs, fmt.Errorf("frontend %s counters: %w", sf.Frontend.Addr, err))
		}
		for _, c := range perCPU {
			sf.Counters.Packets += c.Packets
			sf.Counters.Bytes += c.Bytes
			sf.Counters.Connections += c.Conns
			sf.Counters.NoBackend += c.NoBackend
		}
		out = append(out, sf)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("read frontends: %w", err))
	}
	slices.SortFunc(out, func(a, b ServiceFrontend) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), a.Frontend.Addr.Compare(b.Frontend.Addr),
			cmp.Compare(a.Frontend.Proto, b.Frontend.Proto))
	})
	return out, errors.Join(errs...)
}
