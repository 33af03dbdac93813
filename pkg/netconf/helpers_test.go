package netconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// checkErr fails unless err is a *types.Error with the code and a message
// containing every want substring.
func checkErr(t *testing.T, err error, code uint, want ...string) {
	t.Helper()
	var te *types.Error
	if !errors.As(err, &te) {
		t.Fatalf("error = %v (%T), want *types.Error code %d", err, err, code)
	}
	if te.Code != code {
		t.Errorf("code = %d, want %d (msg %q)", te.Code, code, te.Msg)
	}
	for _, w := range want {
		if !strings.Contains(te.Msg, w) {
			t.Errorf("message %q does not contain %q", te.Msg, w)
		}
	}
}

const (
	codeDecode  = types.ErrDecodingFailure
	codeInvalid = types.ErrInvalidNetworkConfig
)
