package engine

import (
	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/datapath"
)

// maxAttachments bounds a pod's networks, steered or not: each is a delegate run, an
// interface and usually an address. A selection naming one network 150 times created 150
// macvlans before failing (and a kubelet retries that for ever).
const maxAttachments = 32

// checkSelectionCount runs before any NAD lookup: before are the attachments ahead of the
// selection (the cluster and default networks), selected the selection's elements.
func checkSelectionCount(before, selected int) error {
	if n := before + selected; n > maxAttachments {
		return cniError(types.ErrInvalidNetworkConfig, "the pod asks for %d networks (%d selected), at most %d are supported", n, selected, maxAttachments)
	}
	return nil
}

// checkSteeredCount refuses, before any delegate runs, a pod the dataplane would refuse
// after all of them ran: steered pods have at most datapath.MaxInterfaces interfaces.
func (r *request) checkSteeredCount(atts []*attachment) error {
	if !r.conf.Steering || len(atts) <= datapath.MaxInterfaces {
		return nil
	}
	for _, a := range atts {
		if !a.primary && a.policy.Steering || len(a.policy.Multicast) > 0 {
			return cniError(types.ErrInvalidNetworkConfig,
				"the pod has %d networks and steering supports at most %d interfaces; opt networks out of steering or use fewer", len(atts), datapath.MaxInterfaces)
		}
	}
	return nil
}
