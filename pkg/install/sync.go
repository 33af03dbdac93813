package install

import (
	"bytes"
	"context"
	"log/slog"
	"time"
)

// Sync keeps Steer's config wrapped around the primary config until ctx ends: it waits for
// the primary config to appear, writes Steer's, and rewrites it whenever the primary changes
// (a CNI upgrade, a Calico reconfiguration). It returns the first write error.
// written, if set, is called after each successful write.
func Sync(ctx context.Context, c Config, every time.Duration, log *slog.Logger, written func()) error {
	var last []byte
	for {
		_, primary, err := WaitPrimary(ctx, c.ConfDir)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if !bytes.Equal(primary, last) {
			if err := WriteConfig(c, primary); err != nil {
				return err
			}
			if written != nil {
				written()
			}
			if last != nil {
				log.Info("primary CNI config changed: rewrote Steer's", "dir", c.ConfDir)
			}
			last = primary
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}
