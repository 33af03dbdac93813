package bpffs

import (
	"strings"
	"testing"
)

func TestValidContainerID(t *testing.T) {
	good := []string{"abc", "0123456789abcdef", "a.b-c_d", strings.Repeat("a", 255)}
	bad := []string{"", "..", ".", "../x", "a/b", "a\x00b", "-a", strings.Repeat("a", 256), "ünïcode", "a b"}
	for _, id := range good {
		if err := ValidContainerID(id); err != nil {
			t.Errorf("ValidContainerID(%q) = %v, want nil", id, err)
		}
	}
	for _, id := range bad {
		if err := ValidContainerID(id); err == nil {
			t.Errorf("ValidContainerID(%q) = nil, want error", id)
		}
	}
}

func TestLayoutDir(t *testing.T) {
	l := Layout{Root: "/sys/fs/bpf/steer"}
	dir, err := l.Dir("c1")
	if err != nil || dir != "/sys/fs/bpf/steer/c1" {
		t.Fatalf("Dir(c1) = %q, %v", dir, err)
	}
	if _, err := l.Dir("../etc"); err == nil {
		t.Fatal("Dir(../etc) succeeded")
	}
}
