package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/containernetworking/cni/pkg/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// cniError is a *types.Error with a formatted message.
func cniError(code uint, format string, a ...any) *types.Error {
	return types.NewError(code, fmt.Sprintf(format, a...), "")
}

// withCode puts prefix in front of err's whole message (every wrapping layer says something
// useful: libcni names the plugin that failed) and keeps the code of the *types.Error inside
// err, or uses code when there is none.
func withCode(code uint, prefix string, err error) *types.Error {
	var te *types.Error
	if errors.As(err, &te) {
		code = te.Code
	}
	msg := err.Error()
	if prefix != "" {
		msg = prefix + ": " + msg
	}
	return types.NewError(code, msg, "")
}

// apiError turns an apiserver failure into a CNI error: code 11 (try again later) when the
// apiserver timed out, was unreachable or overloaded, since a retry may well succeed; 999
// otherwise (e.g. forbidden: a retry will not help, the message says why).
func apiError(what string, err error) *types.Error {
	code := types.ErrInternal
	if transient(err) {
		code = types.ErrTryAgainLater
	}
	return withCode(code, what, err)
}

func transient(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH),
		errors.As(err, &netErr):
		return true
	}
	return apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsInternalError(err)
}

// firstCode is the code of the first *types.Error in errs, or def.
func firstCode(def uint, errs []error) uint {
	for _, err := range errs {
		var te *types.Error
		if errors.As(err, &te) {
			return te.Code
		}
	}
	return def
}
