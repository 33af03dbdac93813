package engine

import (
	"os"
	"syscall"
	"time"
)

// Attached is a container as its completed ADD left it in the cache: its pod and its
// attachments, in order.
type Attached struct {
	ContainerID       string
	PodNamespace, Pod string
	PodUID            string
	Interfaces        []AttachedInterface
}

// AttachedInterface is one attachment of a container.
type AttachedInterface struct {
	IfName  string
	Network string // "namespace/name" of a NetworkAttachmentDefinition, else the config's name
	Primary bool
}

// AttachedLister reads the containers Steer attached from the cache in a cniDir, for steerd's
// agents; it rereads only the files that changed since its last call. Safe for one goroutine.
type AttachedLister struct {
	store cacheStore
	seen  map[string]listedFile
}

// listedFile identifies a version of a cache file: writes replace the file (a new inode).
type listedFile struct {
	mod  time.Time
	size int64
	ino  uint64
	att  *Attached // nil: not a completed ADD of a pod
}

func fileVersion(fi os.FileInfo) listedFile {
	f := listedFile{mod: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		f.ino = st.Ino
	}
	return f
}

// NewAttachedLister lists the containers cached in cniDir.
func NewAttachedLister(cniDir string) *AttachedLister {
	return &AttachedLister{store: cacheStore{dir: cniDir}, seen: map[string]listedFile{}}
}

// List returns the containers whose ADD completed and named a pod. A file that cannot be read
// (being replaced, or torn by a crash) is skipped this time.
func (l *AttachedLister) List() ([]Attached, error) {
	ids, err := l.store.list()
	if err != nil {
		return nil, err
	}
	next := make(map[string]listedFile, len(ids))
	var out []Attached
	for _, id := range ids {
		path, err := l.store.path(id)
		if err != nil {
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		f, ok := l.seen[id]
		if v := fileVersion(fi); !ok || !f.mod.Equal(v.mod) || f.size != v.size || f.ino != v.ino {
			f = v
			f.att = readAttached(l.store, id)
		}
		next[id] = f
		if f.att != nil {
			out = append(out, *f.att)
		}
	}
	l.seen = next
	return out, nil
}

func readAttached(s cacheStore, id string) *Attached {
	e, err := s.read(id)
	if err != nil || !e.Complete || e.Pod == nil {
		return nil
	}
	a := &Attached{ContainerID: id, PodNamespace: e.Pod.Namespace, Pod: e.Pod.Name, PodUID: e.Pod.UID}
	for _, c := range e.Attachments {
		a.Interfaces = append(a.Interfaces, AttachedInterface{IfName: c.IfName, Network: c.Network, Primary: c.Primary})
	}
	return a
}
