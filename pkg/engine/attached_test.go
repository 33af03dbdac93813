package engine

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestAttachedLister reads what ADD wrote, only completed ADDs of pods, and follows rewrites
// and removals.
func TestAttachedLister(t *testing.T) {
	dir := t.TempDir()
	store := cacheStore{dir: dir}
	write := func(e *cacheEntry) {
		t.Helper()
		if err := store.write(e); err != nil {
			t.Fatal(err)
		}
	}
	pod := &cachedPod{Namespace: "shop", Name: "web-0", UID: "u1"}
	atts := []cachedAttachment{{IfName: "eth0", Network: "flannel", Primary: true}, {IfName: "net1", Network: "shop/dmz"}}
	write(&cacheEntry{ContainerID: "c1", Pod: pod, Complete: true, Attachments: atts})
	write(&cacheEntry{ContainerID: "c2", Pod: pod, Complete: false, Attachments: atts}) // ADD under way
	write(&cacheEntry{ContainerID: "c3", Complete: true, Attachments: atts})            // no pod
	if err := os.WriteFile(filepath.Join(dir, "c4.json"), []byte("{torn"), 0o600); err != nil {
		t.Fatal(err)
	}

	l := NewAttachedLister(dir)
	got, err := l.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Attached{{ContainerID: "c1", PodNamespace: "shop", Pod: "web-0", PodUID: "u1", Interfaces: []AttachedInterface{
		{IfName: "eth0", Network: "flannel", Primary: true}, {IfName: "net1", Network: "shop/dmz"}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}

	// c2's ADD completes; c1 goes.
	write(&cacheEntry{ContainerID: "c2", Pod: pod, Complete: true, Attachments: atts[:1]})
	if err := store.remove("c1"); err != nil {
		t.Fatal(err)
	}
	got, err = l.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ContainerID != "c2" || len(got[0].Interfaces) != 1 {
		t.Fatalf("after rewrite List = %+v, want c2 with eth0 alone", got)
	}
	if empty, err := NewAttachedLister(filepath.Join(dir, "missing")).List(); err != nil || len(empty) != 0 {
		t.Fatalf("missing cache dir: %v, %v; want none, nil", empty, err)
	}
}
