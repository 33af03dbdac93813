package endpoints

import (
	"context"
	"log/slog"

	"github.com/steernet/steer/pkg/leader"
)

// RunElected runs a controller while this process holds the election's lease, a new one each
// term, until ctx ends.
func RunElected(ctx context.Context, election leader.Options, opts Options) error {
	if election.Log == nil {
		election.Log = opts.Log
	}
	if election.Log == nil {
		election.Log = slog.New(slog.DiscardHandler)
	}
	election.Leading = func(on bool) {
		if opts.Metrics == nil {
			return
		}
		if on {
			opts.Metrics.Leader.Set(1)
		} else {
			opts.Metrics.Leader.Set(0)
		}
	}
	return leader.Run(ctx, election, func(lctx context.Context) {
		if err := New(opts).Run(lctx); err != nil && lctx.Err() == nil {
			election.Log.Error("EndpointSlice controller stopped", "err", err)
		}
	})
}
