package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// ErrNotFound reports that no on-disk configuration matched a network name or
// reference. It is returned wrapped (test it with errors.Is) rather than as a
// *types.Error because "not found" is a lookup result a caller may recover
// from, e.g. by asking the apiserver next; a broken configuration, by
// contrast, is always a *types.Error.
var ErrNotFound = errors.New("network configuration not found")

// decodeError is a CNI error with code 6 (ErrDecodingFailure): the bytes are
// not JSON, or a value has the wrong JSON type.
func decodeError(format string, a ...any) error {
	return types.NewError(types.ErrDecodingFailure, fmt.Sprintf(format, a...), "")
}

// invalidError is a CNI error with code 7 (ErrInvalidNetworkConfig): the JSON
// decodes but a value is not acceptable.
func invalidError(format string, a ...any) error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, a...), "")
}

// prefixError puts context in front of err's message. A *types.Error keeps its
// code (the caller still sees 6 or 7); any other error is wrapped with %w.
func prefixError(prefix string, err error) error {
	var te *types.Error
	if errors.As(err, &te) {
		return types.NewError(te.Code, prefix+": "+te.Msg, te.Details)
	}
	return fmt.Errorf("%s: %w", prefix, err)
}

// jsonErrText turns an encoding/json error into a short message that names
// the offending field, without the "json: " noise.
func jsonErrText(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("%q: cannot use a JSON %s as %s", te.Field, te.Value, te.Type)
		}
		return fmt.Sprintf("cannot use a JSON %s as %s", te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
