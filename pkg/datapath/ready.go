package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/steernet/steer/pkg/bpffs"
)

// The thin plugin runs once per ADD, in a fresh process: it cannot keep a collection loaded
// ahead as steerd does (Spares), and loading one itself costs it the parse of the object and the
// verification, 10-15 ms of CPU. So steerd keeps a few sets pinned for it under the root's ready
// directory (FillReady), each in a directory of its own, and the plugin claims one by renaming
// that directory (claimReady): a rename succeeds once, so no two pods ever get the same set. A
// plugin that finds none, or only sets of another build, loads its own.
//
//	<root>/_ready/set-<id>/               a set ready to be claimed
//	<root>/_ready/set-<id>/<map name>     every map, dots as '+' (bpffs refuses dots)
//	<root>/_ready/set-<id>/prog-<name>    the TC programs
//	<root>/_ready/claimed-<ns>-<id>/      claimed at <ns> (Unix nanoseconds), being read
//	<root>/_ready/making-<id>/            being pinned by steerd

// ReadySets is how many sets steerd keeps ready for the thin plugin by default.
const ReadySets = 2

// staleClaim is how long a claimed or half-made set may stay before FillReady takes its
// process for dead and unpins it.
const staleClaim = time.Minute

const (
	readySetPrefix = "set-"
	claimedPrefix  = "claimed-"
	makingPrefix   = "making-"
	progPinPrefix  = "prog-"
)

func readyPinName(mapName string) string { return strings.ReplaceAll(mapName, ".", "+") }
func readyMapName(pin string) string     { return strings.ReplaceAll(pin, "+", ".") }

// embeddedVersion is the version of the object built into this binary, without parsing it:
// what the thin plugin compares a ready set's with before it uses the set's programs.
var embeddedVersion = sync.OnceValue(func() Version {
	return Version{Layout: uint32(steerSteerLayoutSTEER_LAYOUT), Object: objectChecksum(_SteerBytes)}
})

// FillReady pins sets under layout's ready directory until it holds want of them, made at idle
// CPU priority; it unpins the sets another build made and the claims and half-made sets older
// than a minute (their process died). steerd calls it periodically on a thin-mode node.
func FillReady(layout bpffs.Layout, want int) error {
	dir := layout.ReadyDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	have := 0
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), readySetPrefix):
			if v, err := readySetVersion(path); err == nil && v == embeddedVersion() {
				have++
				continue
			}
		case strings.HasPrefix(e.Name(), claimedPrefix):
			ns, _, _ := strings.Cut(strings.TrimPrefix(e.Name(), claimedPrefix), "-")
			if at, err := strconv.ParseInt(ns, 10, 64); err == nil && time.Since(time.Unix(0, at)) < staleClaim {
				continue
			}
		case strings.HasPrefix(e.Name(), makingPrefix):
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) < staleClaim {
				continue
			}
		}
		errs = append(errs, os.RemoveAll(path))
	}
	for ; have < want; have++ {
		if err := pinReadySet(dir); err != nil {
			return errors.Join(append(errs, err)...)
		}
	}
	return errors.Join(errs...)
}

// pinReadySet makes one set and pins it under dir, appearing whole: pinned in a directory of
// its own, then renamed to a set's name.
func pinReadySet(dir string) error {
	r, err := makeReadySet(loadWhenIdle)
	if err != nil {
		return err
	}
	defer r.close()
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	making := filepath.Join(dir, makingPrefix+id)
	if err := os.Mkdir(making, 0o700); err != nil {
		return err
	}
	err = func() error {
		for name, m := range r.maps {
			if err := m.Pin(filepath.Join(making, readyPinName(name))); err != nil {
				return fmt.Errorf("pin %s: %w", name, err)
			}
		}
		for name, p := range r.programs {
			if err := p.Pin(filepath.Join(making, progPinPrefix+name)); err != nil {
				return fmt.Errorf("pin %s: %w", name, err)
			}
		}
		return os.Rename(making, filepath.Join(dir, readySetPrefix+id))
	}()
	if err != nil {
		return errors.Join(fmt.Errorf("ready set: %w", err), os.RemoveAll(making))
	}
	return nil
}

// claimReady takes a set of this build from layout's ready directory, or returns nil when
// there is none. Its pins are gone once it returns: the set is the caller's alone.
func claimReady(layout bpffs.Layout) *readySet {
	dir := layout.ReadyDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), readySetPrefix) {
			continue
		}
		claimed := filepath.Join(dir, fmt.Sprintf("%s%d-%s", claimedPrefix, time.Now().UnixNano(), strings.TrimPrefix(e.Name(), readySetPrefix)))
		if os.Rename(filepath.Join(dir, e.Name()), claimed) != nil {
			continue // another plugin's
		}
		r, err := openReadySet(claimed)
		_ = os.RemoveAll(claimed)
		if err == nil {
			return r
		}
	}
	return nil
}

// openReadySet opens the pins of a claimed set, if this build made it.
func openReadySet(dir string) (*readySet, error) {
	if v, err := readySetVersion(dir); err != nil || v != embeddedVersion() {
		return nil, fmt.Errorf("ready set of %v, not of this build (%v)", v, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	r := &readySet{maps: map[string]*ebpf.Map{}, programs: map[string]*ebpf.Program{}}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if name, ok := strings.CutPrefix(e.Name(), progPinPrefix); ok {
			if r.programs[name], err = ebpf.LoadPinnedProgram(path, nil); err != nil {
				break
			}
			continue
		}
		if r.maps[readyMapName(e.Name())], err = ebpf.LoadPinnedMap(path, nil); err != nil {
			break
		}
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// readySetVersion reads the version map of the set pinned in dir.
func readySetVersion(dir string) (Version, error) {
	return readVersionPin(filepath.Join(dir, readyPinName(versionMap)))
}
