package daemon

import (
	"errors"
	"log/slog"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// peerCredListener admits only connections from root (or steerd's own euid), as the kernel
// reports the peer with SO_PEERCRED.
//
// The socket is already 0600 in a 0700 directory; this is defence in depth. A request runs
// delegates as root, in any network namespace, with any config, so a mode loosened by an
// operator, a hostPath mounted into an unprivileged container, or a descriptor leaked to a
// less privileged process must not make it a privilege escalation.
type peerCredListener struct {
	net.Listener
	log *slog.Logger
}

// Accept returns the next connection from an allowed peer; the others are closed at once.
func (l peerCredListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, err := peerCred(c)
		if err == nil && allowedUID(cred.Uid) {
			return c, nil
		}
		if err != nil {
			l.log.Info("refused a connection: peer credentials unknown", "err", err)
		} else {
			l.log.Info("refused a connection from a non-root peer", "pid", cred.Pid, "uid", cred.Uid)
		}
		_ = c.Close()
	}
}

// allowedUID is root, or the user steerd runs as (a test, or a rootless setup).
func allowedUID(uid uint32) bool {
	return uid == 0 || uid == uint32(os.Geteuid())
}

// peerCred is who connected: the credentials the kernel recorded at connect(2).
func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, credErr
}
