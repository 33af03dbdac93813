package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// Multus' auxiliary chain ("auxiliaryCNIChainName"): after every network of the pod, a
// conflist named after the key runs on its own, as the next delegate (interface net<N>, N its
// position): Multus' passthru plugin, then every .conf plugin file, in name order, of the
// directory of that name beside the clusterNetwork file. As in Multus v4.3.0, clusterNetwork
// must then be a path (ADD fails otherwise), and a name that is not a CNI network name, a
// directory that cannot be read or holds no plugin file, or a file that is not a plugin
// config means no chain (logged). The chain is never steered.

// auxChainName is the CNI network name rule Multus checks the chain's name against.
var auxChainName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// auxChain returns the auxiliary chain's attachment, placed after the n networks before it,
// or nil when there is none.
func (r *request) auxChain(n int) (*attachment, error) {
	name := r.conf.AuxiliaryCNIChainName
	if name == "" {
		return nil, nil
	}
	if !strings.Contains(r.conf.ClusterNetwork, "/") {
		return nil, cniError(types.ErrInvalidNetworkConfig,
			`"auxiliaryCNIChainName" needs "clusterNetwork" to be a config file path (the chain's plugins are in a directory beside it), not %q`, r.conf.ClusterNetwork)
	}
	if !auxChainName.MatchString(name) {
		r.log.Error("auxiliary chain not run: invalid network config name", "name", name)
		return nil, nil
	}
	dir := filepath.Join(filepath.Dir(r.conf.ClusterNetwork), name)
	plugins := []json.RawMessage{json.RawMessage(`{"type":"passthru","name":"passthru-cni"}`)}
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		r.log.Error("auxiliary chain not run", "dir", dir, "err", err)
		return nil, nil
	}
	var files []string
	for _, e := range entries {
		if !e.IsDir() && filepath.Ext(e.Name()) == ".conf" {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f))
		var probe struct {
			Type string `json:"type"`
		}
		if err == nil {
			err = json.Unmarshal(b, &probe)
		}
		if err == nil && probe.Type == "" {
			err = fmt.Errorf(`no "type"`)
		}
		if err != nil {
			r.log.Error("auxiliary chain not run", "file", filepath.Join(dir, f), "err", err)
			return nil, nil
		}
		plugins = append(plugins, json.RawMessage(b))
	}
	if len(plugins) == 1 {
		return nil, nil // passthru alone: Multus adds no chain
	}
	conf, err := json.Marshal(map[string]any{"cniVersion": r.conf.CNIVersion, "name": name, "plugins": plugins})
	if err != nil {
		return nil, err
	}
	return &attachment{ifName: "net" + strconv.Itoa(n), network: name, conf: conf}, nil
}
