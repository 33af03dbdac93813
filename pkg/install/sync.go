package install

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Apply writes Steer's config for the node as it is now (around the primary config, with the
// keys of a Multus config carried) and then takes a Multus installation over. It waits,
// bounded by ctx, for a primary config when Steer's needs one, and reports whether it wrote.
func Apply(ctx context.Context, c Config, log *slog.Logger) (bool, error) {
	m, err := FindMultus(c.ConfDir)
	if err != nil {
		return false, err
	}
	if m != nil && m.Plugin != nil {
		c.Multus, _ = m.Carried()
	}
	var path string
	var primary []byte
	if c.NeedsPrimary() {
		if path, primary, err = WaitPrimary(ctx, c.ConfDir); err != nil {
			return false, err
		}
	}
	// Steer's config first: until Multus' is set aside the runtime keeps using Multus'.
	changed, err := WriteConfig(c, path, primary)
	if err != nil {
		return false, err
	}
	return changed, TakeOver(m, log)
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
		if _, err := os.Stat(filepath.Join(c.ConfDir, ConfigName)); !first && errors.Is(err, fs.ErrNotExist) {
			log.Info("Steer's CNI config was removed (uninstall): no longer writing it", "dir", c.ConfDir)
			return nil
		}
		changed, err := Apply(ctx, c, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
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
