package service

import "errors"

// ErrNoDatapath is what a Programmer's error wraps for a pod without Steer's datapath (its
// networks opted out of steering, or Multus attached it): there is nothing to program, and
// trying again cannot help until the pod is attached anew.
var ErrNoDatapath = errors.New("pod has no Steer datapath")
