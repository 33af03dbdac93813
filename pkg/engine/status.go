package engine

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/steering"
)

// deviceInfoCapability is the capability through which device plugins' CNIs (SR-IOV and
// the like) learn where to write the NPWG device-info of an attachment.
const deviceInfoCapability = "CNIDeviceInfoFile"

// deviceInfoPath is where an attachment's device-info file goes, under cniDir.
func deviceInfoPath(cniDir, containerID, ifName string) string {
	return filepath.Join(cniDir, "devinfo", containerID+"-"+ifName+".json")
}

// networkStatuses is the network-status annotation of the attachments, in order.
func networkStatuses(atts []*attachment, cniDir, containerID string) []k8s.NetworkStatus {
	def := atts[0] // the cluster network, unless an element took the default route
	for _, a := range atts {
		if len(a.gateways) > 0 {
			def = a
			break
		}
	}
	out := make([]k8s.NetworkStatus, 0, len(atts))
	for _, a := range atts {
		st := statusOf(a.network, a.ifName, a.result, a == def)
		if a.capArgs[deviceInfoCapability] != nil {
			st.DeviceInfo = readDeviceInfo(deviceInfoPath(cniDir, containerID, a.ifName))
		}
		out = append(out, st)
	}
	return out
}

// statusOf describes one attachment the way Multus does: its pod interface, that
// interface's IPs (and those bound to no interface), the gateways of its default routes, DNS.
func statusOf(network, ifName string, res *current.Result, isDefaultNet bool) k8s.NetworkStatus {
	st := k8s.NetworkStatus{Name: network, Interface: ifName, Default: isDefaultNet}
	if res == nil {
		return st
	}
	idx := -1
	for i, itf := range res.Interfaces {
		if itf.Sandbox != "" && (idx < 0 || itf.Name == ifName) {
			idx = i
			if itf.Name == ifName {
				break
			}
		}
	}
	if idx >= 0 {
		itf := res.Interfaces[idx]
		st.Interface, st.Mac, st.Mtu = itf.Name, itf.Mac, itf.Mtu
	}
	for _, ip := range res.IPs {
		if idx < 0 || ip.Interface == nil || *ip.Interface == idx {
			st.IPs = append(st.IPs, ip.Address.IP.String())
		}
	}
	for _, r := range res.Routes {
		if !steering.IsDefaultRoute(&r.Dst) {
			continue
		}
		gw := r.GW
		if gw == nil {
			// Plugins route through the IP's gateway when the route names none.
			gw = ipGateway(res, idx, r.Dst.IP.To4() != nil)
		}
		if gw != nil {
			st.Gateway = append(st.Gateway, gw.String())
		}
	}
	st.DNS = k8s.DNS{
		Nameservers: res.DNS.Nameservers,
		Domain:      res.DNS.Domain,
		Search:      res.DNS.Search,
		Options:     res.DNS.Options,
	}
	return st
}

// ipGateway is the gateway of the first IP of the family on interface idx (-1: any).
func ipGateway(res *current.Result, idx int, v4 bool) net.IP {
	for _, ip := range res.IPs {
		if ip.Gateway != nil && (ip.Address.IP.To4() != nil) == v4 && (idx < 0 || ip.Interface == nil || *ip.Interface == idx) {
			return ip.Gateway
		}
	}
	return nil
}

// readDeviceInfo returns the device-info file's JSON object, or nil when the plugin wrote
// none (or wrote something that is not JSON: status must still be written).
func readDeviceInfo(path string) json.RawMessage {
	data, err := os.ReadFile(path)
	if err != nil || !json.Valid(data) {
		return nil
	}
	return data
}

// removeDeviceInfo deletes the device-info file of an attachment, if any.
func removeDeviceInfo(cniDir, containerID, ifName string) error {
	err := os.Remove(deviceInfoPath(cniDir, containerID, ifName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// mergedResult is what ADD returns: the cluster network's result, with the pod interfaces
// of the other attachments appended (their IPs are not: runtimes take the pod IP from here).
func mergedResult(atts []*attachment) types.Result {
	primary := *atts[0].result
	primary.Interfaces = append([]*current.Interface(nil), primary.Interfaces...)
	for _, a := range atts[1:] {
		primary.Interfaces = append(primary.Interfaces, sandboxInterfaces(a.result)...)
	}
	return &primary
}

// dataplaneAttachments is what the steering dataplane gets.
func dataplaneAttachments(atts []*attachment) []steering.Attachment {
	out := make([]steering.Attachment, len(atts))
	for i, a := range atts {
		out[i] = steering.Attachment{IfName: a.ifName, Network: a.network, Primary: a.primary, Result: a.result, Policy: a.policy}
	}
	return out
}
