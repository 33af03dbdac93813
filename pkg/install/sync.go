package install

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Apply writes Steer's config for the node as it is now (around the primary config, with the
// keys of a Multus config carried) and then takes a Multus installation over. It waits,
// bounded by ctx, for a primary config when Steer's needs one, and reports whether it wrote.
func Apply(ctx context.Context, c Config, log *slog.Logger) (bool, error) {
	written, _, err := apply(ctx, c, log, false)
	return written, err
}

// apply is Apply; with ifInstalled it does nothing, and says gone, when Steer's config is not
// there (uninstall removed it).
func apply(ctx context.Context, c Config, log *slog.Logger, ifInstalled bool) (written, gone bool, err error) {
	m, err := FindMultus(c.ConfDir)
	if err != nil {
		return false, false, err
	}
	if m != nil && m.Plugin != nil {
		c.Multus, _ = m.Carried()
	}
	if c.NeedsPrimary() {
		if _, _, err := WaitPrimary(ctx, c.ConfDir); err != nil {
			return false, false, err
		}
	}
	// The rest under the conf dir's lock, which Uninstall takes too: a takeover racing an
	// uninstall would set aside the Multus config uninstall just put back.
	unlock, err := lockDir(c.ConfDir)
	if err != nil {
		return false, false, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(c.ConfDir, ConfigName)); ifInstalled && errors.Is(err, fs.ErrNotExist) {
		return false, true, nil
	}
	if m, err = FindMultus(c.ConfDir); err != nil {
		return false, false, err
	}
	c.Multus = nil
	if m != nil && m.Plugin != nil {
		c.Multus, _ = m.Carried()
	}
	var path string
	var primary []byte
	if c.NeedsPrimary() {
		if path, primary, err = Primary(c.ConfDir); err != nil {
			return false, false, fmt.Errorf("primary CNI config: %w", err)
		}
	}
	// Steer's config first: until Multus' is set aside the runtime keeps using Multus'.
	if written, err = WriteConfig(c, path, primary); err != nil {
		return false, false, err
	}
	return written, false, TakeOver(m, log)
}

// Uninstall hands the node back: the Multus config Steer replaced is renamed back first (when
// it sorts first the node is Multus' from that rename on; either way there is always a
// working first config), then Steer's config goes. It returns the restored config's path, ""
// when there was none.
func Uninstall(confDir string) (string, error) {
	unlock, err := lockDir(confDir)
	if err != nil {
		return "", err
	}
	defer unlock()
	path, _, err := RestoreMultus(confDir)
	if err != nil {
		return "", err
	}
	return path, RemoveConfig(confDir)
}

// lockDir takes an exclusive flock on dir, shared by steerd's processes (the daemon's Sync
// and the preStop's uninstall); the runtime takes none.
func lockDir(dir string) (func(), error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { d.Close() }, nil // closing releases the lock
}

// Sync keeps Steer's config wrapped around the primary config until ctx ends: it waits for
// the primary config to appear, writes Steer's, and rewrites it whenever the primary changes
// (a CNI upgrade, a Calico reconfiguration). A Multus config that appears ahead of Steer's (a
// Multus DaemonSet still running) is taken over again. Once Steer's config is gone after it
// was written, uninstall ran (the DaemonSet's preStop, while this still runs): Sync stops,
// rather than take the node back from the primary network or from Multus. It returns the
// first write error. written, if set, is called each time Steer's config is in place.
func Sync(ctx context.Context, c Config, every time.Duration, log *slog.Logger, written func()) error {
	first := true
	for {
		changed, gone, err := apply(ctx, c, log, !first)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if gone {
			log.Info("Steer's CNI config was removed (uninstall): no longer writing it", "dir", c.ConfDir)
			return nil
		}
		if written != nil {
			written()
		}
		if changed && !first {
			log.Info("primary CNI config changed: rewrote Steer's", "dir", c.ConfDir)
		}
		first = false
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
