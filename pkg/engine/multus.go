package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/delegate"
)

// Pods that Multus attached before Steer replaced it on the node are known only to Multus'
// cache: one file per container, named by the container ID, under Multus' cniDir. DEL, CHECK
// and GC fall back to it when Steer has no entry, so their delegates' IPs do not leak.

// multusDevInfoDir is where Multus (network-attachment-definition-client) puts the
// CNIDeviceInfoFile of a delegate with a deviceID.
const multusDevInfoDir = "/var/run/k8s.cni.cncf.io/devinfo/cni"

// errMultusCache wraps a Multus cache file that is not the delegate list Multus writes.
var errMultusCache = errors.New("unreadable multus cache")

// multusDelegate is one element of the JSON array Multus v3/v4 caches per container
// (saveDelegates marshals its []*types.DelegateNetConf). Only what DEL needs is read.
type multusDelegate struct {
	Conf struct {
		Name string `json:"name"`
	}
	ConfList struct {
		Name    string            `json:"name"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	// CNINetworkConfigList is libcni's list (untagged fields), set for a conflist file. ADD
	// ran it whenever it has plugins; Bytes is then a re-encoding that lost fields.
	CNINetworkConfigList struct {
		Plugins []json.RawMessage
		Bytes   []byte
	}
	Name                  string
	IfnameRequest         string   `json:"ifnameRequest"`
	MacRequest            string   `json:"macRequest"`
	InfinibandGUIDRequest string   `json:"infinibandGUIDRequest"`
	IPRequest             []string `json:"ipRequest"`
	DeviceID              string   `json:"deviceID"`
	// Bytes is the delegate configuration Multus passes to libcni (base64 in the file).
	Bytes []byte
}

// confName is the name in the delegate's configuration, under which libcni caches results.
func (d *multusDelegate) confName() string {
	if d.Conf.Name != "" {
		return d.Conf.Name
	}
	return d.ConfList.Name
}

// config is the configuration ADD ran (Multus' conflistAdd takes CNINetworkConfigList when
// it has plugins). Multus' own DEL uses Bytes and fails where ipam.ranges was lost.
func (d *multusDelegate) config() []byte {
	if l := d.CNINetworkConfigList; len(l.Plugins) > 0 && len(l.Bytes) > 0 {
		return l.Bytes
	}
	return d.Bytes
}

func (d *multusDelegate) network() string {
	switch {
	case d.Name != "":
		return d.Name
	case d.Conf.Name != "":
		return d.Conf.Name
	}
	return d.ConfList.Name
}

// multusCachePath is the file Multus keeps for a container.
func multusCachePath(dir, containerID string) (string, error) {
	if err := bpffs.ValidContainerID(containerID); err != nil {
		return "", err
	}
	return filepath.Join(dir, containerID), nil
}

// readMultusCache turns Multus' cache of a container into an entry that teardown and CHECK
// run as Multus' own DEL would: same delegates, interface names, CNI_ARGS and runtimeConfig.
// ifName is the runtime's CNI_IFNAME, which Multus does not cache (the first delegate gets
// it). The error wraps fs.ErrNotExist when Multus has no file either.
func (r *request) readMultusCache(containerID, ifName string) (*cacheEntry, error) {
	path, err := multusCachePath(r.conf.MultusCNIDir, containerID)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var dels []multusDelegate
	if err := json.Unmarshal(data, &dels); err != nil {
		return nil, fmt.Errorf("%w %s: %v", errMultusCache, path, err)
	}
	if len(dels) == 0 {
		return nil, fmt.Errorf("%w %s: no delegates", errMultusCache, path)
	}
	base, err := multusRuntimeConfig(r.conf.RuntimeConfig.Raw)
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{
		ContainerID: containerID, IfName: ifName, CNIVersion: r.conf.CNIVersion,
		CNIArgs: multusArgs(r.cniArgs), Complete: true, multus: path,
	}
	if fi, err := os.Stat(path); err == nil {
		e.modTime = fi.ModTime()
	}
	for idx, d := range dels {
		if len(d.config()) == 0 {
			return nil, fmt.Errorf("%w %s: delegate %d has no configuration", errMultusCache, path, idx)
		}
		// Multus' getIfname: the request, else CNI_IFNAME for the first (master) delegate,
		// else net<index>.
		a := cachedAttachment{IfName: d.IfnameRequest, Network: d.network(), Primary: idx == 0, Config: d.config()}
		if a.IfName == "" {
			a.IfName = fmt.Sprintf("net%d", idx)
			if idx == 0 {
				a.IfName = ifName
			}
		}
		a.CapabilityArgs = multusCapabilityArgs(base, &d, idx == 0, containerID, a.IfName)
		e.Attachments = append(e.Attachments, a)
	}
	return e, nil
}

// multusRuntimeConfig keeps the runtimeConfig keys Multus' RuntimeConfig type decodes.
func multusRuntimeConfig(raw json.RawMessage) (map[string]any, error) {
	var all map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &all); err != nil {
			return nil, fmt.Errorf(`steer config: "runtimeConfig": %w`, err)
		}
	}
	out := map[string]any{}
	for _, k := range []string{"portMappings", "bandwidth", "ips", "mac", "infinibandGUID", "deviceID", deviceInfoCapability} {
		if v, ok := all[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// multusCapabilityArgs is Multus' mergeCNIRuntimeConfig: the runtime's runtimeConfig for
// every delegate, overlaid with the cached requests on all but the master. (Port mappings and
// bandwidth of the selection are not cached by Multus, so its DEL lacks them too.)
func multusCapabilityArgs(base map[string]any, d *multusDelegate, master bool, containerID, ifName string) map[string]any {
	out := make(map[string]any, len(base))
	for k, v := range base {
		out[k] = v
	}
	if !master {
		if d.IPRequest != nil {
			out["ips"] = d.IPRequest
		}
		if d.MacRequest != "" {
			out["mac"] = d.MacRequest
		}
		if d.InfinibandGUIDRequest != "" {
			out["infinibandGUID"] = d.InfinibandGUIDRequest
		}
		if d.DeviceID != "" {
			out["deviceID"] = d.DeviceID
		}
	}
	if out["deviceID"] != nil && out["deviceID"] != "" {
		name := fmt.Sprintf("%s-%s_%s", d.Name, containerID, ifName)
		out[deviceInfoCapability] = filepath.Join(multusDevInfoDir, strings.ReplaceAll(name, "/", "-"))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// multusArgs is the CNI_ARGS Multus gives its delegates: the four K8S_* keys after
// IgnoreUnknown=true, in that order, then the runtime's other pairs. (Multus appends the
// runtime's K8S_* pairs a second time; once is enough for every plugin's parser.)
func multusArgs(runtime [][2]string) [][2]string {
	out := [][2]string{{"IgnoreUnknown", "true"}, {"K8S_POD_NAMESPACE", ""}, {"K8S_POD_NAME", ""}, {"K8S_POD_INFRA_CONTAINER_ID", ""}, {argPodUID, ""}}
	for _, kv := range runtime {
		found := false
		for i := range out {
			if out[i][0] == kv[0] && out[i][1] == "" && kv[1] != "" {
				out[i][1], found = kv[1], true
				break
			}
		}
		if !found {
			out = append(out, kv)
		}
	}
	return out
}

// multusRunner runs delegates with libcni's cache in Multus' cniDir, where Multus' libcni left
// the results that DEL and CHECK pass as prevResult.
func (r *request) multusRunner() *delegate.Runner {
	runner := delegate.NewRunner(r.binDirs, r.conf.MultusCNIDir, r.exec)
	runner.Timeout = r.conf.DelegateTimeout
	return runner
}

// forMultus is r with the runner that Multus-cached entries need.
func (r *request) forMultus() *request {
	mr := *r
	mr.runner = r.multusRunner()
	return &mr
}

// removeMultusCache deletes Multus' file of an entry; a missing one is fine.
func removeMultusCache(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove multus cache: %w", err)
	}
	return nil
}

// listMultusCache returns the container IDs Multus has a cache file for.
func (r *request) listMultusCache() ([]string, error) { return containerFiles(r.conf.MultusCNIDir, "") }

// multusIfName is the runtime's CNI_IFNAME of a container Multus attached, for GC, which
// has none: the interface libcni cached for its first delegate, else eth0.
func (r *request) multusIfName(containerID string) string {
	path, err := multusCachePath(r.conf.MultusCNIDir, containerID)
	if err != nil {
		return "eth0"
	}
	var dels []multusDelegate
	if data, err := os.ReadFile(path); err != nil || json.Unmarshal(data, &dels) != nil || len(dels) == 0 {
		return "eth0"
	}
	if dels[0].IfnameRequest != "" {
		return dels[0].IfnameRequest
	}
	if name := r.multusRunner().CachedIfName(containerID, dels[0].confName()); name != "" {
		return name
	}
	return "eth0"
}
