// Package steering turns a pod's attachments into its dataplane: it derives the BPF
// configuration from the delegates' results and policy, sets the kernel knobs BPF cannot
// (rp_filter, arp_ignore, multicast routes), attaches the programs, and undoes all of it.
package steering

import (
	"context"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/steernet/steer/pkg/netconf"
)

// Attachment is one network a pod was attached to by a delegate.
type Attachment struct {
	IfName  string // interface inside the pod
	Network string // "namespace/name" of the NAD, or the cluster network's name
	Primary bool   // the cluster network (eth0)
	Result  *current.Result
	Policy  netconf.Policy
}

// Dataplane steers a pod's traffic; the engine calls it after every delegate succeeded and
// before the network-status is written, and on DEL.
type Dataplane interface {
	// Attach sets up steering for a pod; on error it leaves nothing behind.
	Attach(ctx context.Context, containerID, netnsPath string, atts []Attachment) error
	// Detach undoes Attach. It succeeds when there is nothing to undo (pod gone, netns gone,
	// called twice).
	Detach(ctx context.Context, containerID, netnsPath string) error
	// Check verifies that what Attach set up for atts is still in place, naming what is not.
	Check(ctx context.Context, containerID, netnsPath string, atts []Attachment) error
}

// Preparer is a Dataplane that starts work for a pod's Attach that needs nothing the delegates
// return: the engine calls Prepare with the planned attachments (no results yet) before it runs
// them.
type Preparer interface {
	Prepare(atts []Attachment)
}

// Off is the Dataplane used when steering is disabled: it does nothing.
type Off struct{}

// Attach does nothing.
func (Off) Attach(context.Context, string, string, []Attachment) error { return nil }

// Detach does nothing.
func (Off) Detach(context.Context, string, string) error { return nil }

// Check does nothing.
func (Off) Check(context.Context, string, string, []Attachment) error { return nil }
