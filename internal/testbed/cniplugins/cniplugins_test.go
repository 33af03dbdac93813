package cniplugins

import (
	"slices"
	"testing"
)

func TestSpec(t *testing.T) {
	if Version[0] != 'v' {
		t.Errorf("Version %q: want a tag such as v1.9.1", Version)
	}
	for _, want := range []string{"bridge", "host-local", "macvlan", "tuning"} {
		if !slices.Contains(Names, want) {
			t.Errorf("Names %v lack %s", Names, want)
		}
	}
}
