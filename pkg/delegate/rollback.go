package delegate

import (
	"context"
	"errors"
	"fmt"
)

// Rollback collects the undo steps of an operation that is built up step by step, and runs
// them in reverse when the operation fails:
//
//	func add(ctx context.Context) (err error) {
//		var rb delegate.Rollback
//		defer func() {
//			if err != nil {
//				err = errors.Join(err, rb.Run(context.WithoutCancel(ctx)))
//			}
//		}()
//		rb.Push("net1", func(ctx context.Context) error { return runner.Del(ctx, n, t) })
//		...
//
// The zero value is ready to use. It is not safe for concurrent use.
type Rollback struct {
	steps []undoStep
}

type undoStep struct {
	name string
	undo func(context.Context) error
}

// Push records how to undo one step.
func (rb *Rollback) Push(name string, undo func(context.Context) error) {
	rb.steps = append(rb.steps, undoStep{name, undo})
}

// Len is the number of steps recorded.
func (rb *Rollback) Len() int { return len(rb.steps) }

// Run undoes every step, last first. A failing step does not stop the others; their errors
// are joined, each prefixed with the step's name. The steps are forgotten either way.
func (rb *Rollback) Run(ctx context.Context) error {
	var errs []error
	for i := len(rb.steps) - 1; i >= 0; i-- {
		s := rb.steps[i]
		if err := s.undo(ctx); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", s.name, err))
		}
	}
	rb.steps = nil
	return errors.Join(errs...)
}
