package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/netconf"
)

const (
	cacheKind = "steer/cache/v1"
	// libcniCacheDir, under cniDir, holds libcni's own result cache (prevResult for
	// delegates' CHECK and DEL). Not a valid container ID, so it cannot clash with one.
	libcniCacheDir = "_libcni"
)

// cacheEntry is what ADD leaves for DEL, CHECK and GC about one container.
type cacheEntry struct {
	Kind        string      `json:"kind"`
	ContainerID string      `json:"containerID"`
	NetNS       string      `json:"netns,omitempty"`
	IfName      string      `json:"ifName"`
	CNIArgs     [][2]string `json:"cniArgs,omitempty"`
	// CNIVersion is the plugin configuration's, the fallback of delegates that set none.
	CNIVersion string     `json:"cniVersion,omitempty"`
	Pod        *cachedPod `json:"pod,omitempty"`
	// Complete is set once ADD succeeded; an incomplete entry is an ADD in progress or one
	// that died half-way.
	Complete    bool               `json:"complete"`
	Attachments []cachedAttachment `json:"attachments"`

	modTime time.Time // from the file, for GC
	// multus is the path of Multus' cache file when the entry was read from it.
	multus string
}

type cachedPod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// cachedAttachment is one delegate as ADD ran it.
type cachedAttachment struct {
	IfName  string `json:"ifName"`
	Network string `json:"network"`
	Primary bool   `json:"primary,omitempty"`
	// Config is the delegate configuration, byte for byte as ADD passed it to libcni
	// (base64 in the file, so not even whitespace changes).
	Config         []byte          `json:"config"`
	CapabilityArgs map[string]any  `json:"capabilityArgs,omitempty"`
	Result         *current.Result `json:"result,omitempty"`
	// Policy is the attachment's resolved Steer policy, for CHECK to verify the dataplane that
	// ADD set up (the selection element that shaped it may be gone).
	Policy *netconf.Policy `json:"policy,omitempty"`
}

// cacheStore keeps one file per container in dir.
type cacheStore struct{ dir string }

func (s cacheStore) path(containerID string) (string, error) {
	if err := bpffs.ValidContainerID(containerID); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, containerID+".json"), nil
}

// read returns the entry of a container; the error wraps fs.ErrNotExist when there is none.
func (s cacheStore) read(containerID string) (*cacheEntry, error) {
	path, err := s.path(containerID)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e cacheEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("cache %s: %w", path, err)
	}
	if e.Kind != cacheKind || e.ContainerID != containerID {
		return nil, fmt.Errorf("cache %s: kind %q for container %q is not a %s entry for %q", path, e.Kind, e.ContainerID, cacheKind, containerID)
	}
	if fi, err := os.Stat(path); err == nil {
		e.modTime = fi.ModTime()
	}
	return &e, nil
}

// write replaces the entry atomically: a reader sees the old or the new file, never a torn
// one, even if the plugin is killed mid-write.
func (s cacheStore) write(e *cacheEntry) error {
	path, err := s.path(e.ContainerID)
	if err != nil {
		return err
	}
	e.Kind = cacheKind
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode cache: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("create cache dir: %w", err)
	}
	f, err := os.CreateTemp(s.dir, "."+e.ContainerID+".tmp-*")
	if err != nil {
		return fmt.Errorf("write cache: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write cache: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write cache: %w", err)
	}
	return nil
}

// remove deletes the entry; a missing one is fine.
func (s cacheStore) remove(containerID string) error {
	path, err := s.path(containerID)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove cache: %w", err)
	}
	return nil
}

// list returns the container IDs that have an entry.
func (s cacheStore) list() ([]string, error) { return containerFiles(s.dir, ".json") }

// containerFiles returns the container IDs named by the regular files of dir, each followed by
// suffix; a missing dir has none.
func containerFiles(dir, suffix string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var ids []string
	for _, de := range entries {
		id, ok := strings.CutSuffix(de.Name(), suffix)
		if ok && de.Type().IsRegular() && bpffs.ValidContainerID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// CachedPod returns what ADD recorded of a container in cniDir: its network namespace path and
// its pod ("" when unknown), for steerd to upgrade and report on attachments it did not make.
func CachedPod(cniDir, containerID string) (netns, namespace, name string, err error) {
	e, err := cacheStore{dir: cniDir}.read(containerID)
	if err != nil {
		return "", "", "", err
	}
	if e.Pod != nil {
		namespace, name = e.Pod.Namespace, e.Pod.Name
	}
	return e.NetNS, namespace, name, nil
}
