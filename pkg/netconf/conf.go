package netconf

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Defaults of the plugin configuration.
const (
	DefaultConfDir = "/etc/cni/multus/net.d"
	DefaultCNIDir  = "/var/lib/cni/steer"
	// DefaultMultusCNIDir is Multus' own default cniDir, where it caches pods it attached.
	DefaultMultusCNIDir = "/var/lib/cni/multus"
	DefaultBinDir       = "/opt/cni/bin"
	DefaultNamespace    = "kube-system"
	DefaultAPITimeout   = 10 * time.Second
	// DefaultDelegateTimeout bounds one delegate network's verb: long enough for slow IPAM,
	// short enough that a hung plugin fails the ADD well before the kubelet gives up.
	DefaultDelegateTimeout = time.Minute
	DefaultBPFFSRoot       = "/sys/fs/bpf/steer"
)

// Conf is the configuration of the steer CNI plugin: the keys of the Multus
// thin plugin with the same meaning, plus Steer's own. See the package
// documentation for every key.
type Conf struct {
	CNIVersion string
	Name       string
	Type       string

	Kubeconfig      string
	ClusterNetwork  string
	DefaultNetworks []string
	// Delegates are kept as the exact bytes of each delegate config.
	Delegates []json.RawMessage

	ConfDir string
	CNIDir  string
	BinDir  string
	// MultusCNIDir is where Multus cached the pods it attached, for DEL, CHECK and GC of
	// pods created before Steer replaced it.
	MultusCNIDir string

	LogFile     string
	LogLevel    string // lower case; "" leaves the logger's default
	LogToStderr bool
	LogOptions  LogOptions

	// AuxiliaryCNIChainName names Multus' auxiliary chain: passthru, then the plugin files
	// of the directory of that name beside a clusterNetwork file, run after every network.
	AuxiliaryCNIChainName string

	NamespaceIsolation bool
	// GlobalNamespaces is "globalNamespaces" split at commas and trimmed.
	GlobalNamespaces []string
	SystemNamespaces []string
	// Namespace is "steerNamespace", or its Multus name "multusNamespace".
	Namespace string

	ReadinessIndicatorFile string
	RetryDeleteOnError     bool
	// StrictCapabilities refuses a selection element asking for a capability its network
	// does not declare, instead of accepting it as Multus does.
	StrictCapabilities bool
	Capabilities       map[string]bool
	RuntimeConfig      PluginRuntimeConfig

	SocketPath string
	// ThinFallback runs the engine in-process when the daemon's socket does not answer;
	// without it a thick-mode ADD fails instead (the daemon's node view is the one to trust).
	ThinFallback bool
	Steering     bool
	APITimeout   time.Duration
	// DelegateTimeout bounds each verb of one delegate network; a plugin still running
	// then is killed and the verb fails.
	DelegateTimeout time.Duration
	BPFFSRoot       string

	// Warnings are what ParseConf accepted but the log should say (Multus warns there too).
	Warnings []string
	// Unknown holds the keys ParseConf does not know, as raw JSON.
	Unknown map[string]json.RawMessage
	// Raw is a copy of the bytes ParseConf was given.
	Raw []byte
}

// PluginRuntimeConfig is the "runtimeConfig" the container runtime injects
// for the capabilities the plugin declares.
type PluginRuntimeConfig struct {
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	Bandwidth    *Bandwidth    `json:"bandwidth,omitempty"`
	// Raw is the whole object, with any keys beyond the two above.
	Raw json.RawMessage `json:"-"`
}

// ThickMode reports whether the plugin should hand requests to steerd.
func (c *Conf) ThickMode() bool { return c.SocketPath != "" }

// IsSystemNamespace reports whether pods in ns get no defaultNetworks.
func (c *Conf) IsSystemNamespace(ns string) bool { return contains(c.SystemNamespaces, ns) }

// IsGlobalNamespace reports whether, under namespaceIsolation, any pod may use
// the NetworkAttachmentDefinitions of ns.
func (c *Conf) IsGlobalNamespace(ns string) bool { return contains(c.GlobalNamespaces, ns) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ParseConf decodes and validates the plugin configuration (the CNI stdin).
// As in Multus (encoding/json), known keys match case-insensitively, an
// exact match winning; a null value keeps the default. Errors are
// *types.Error naming the key: code 6 when data or a value does not decode,
// 7 when a value is invalid.
func ParseConf(data []byte) (*Conf, error) {
	if !isJSONObject(data) {
		if !json.Valid(data) {
			return nil, decodeError("steer config is not valid JSON")
		}
		return nil, decodeError("steer config must be a JSON object")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, decodeError("steer config: %s", jsonErrText(err))
	}
	c := &Conf{
		ConfDir:          DefaultConfDir,
		CNIDir:           DefaultCNIDir,
		MultusCNIDir:     DefaultMultusCNIDir,
		BinDir:           DefaultBinDir,
		LogToStderr:      true,
		GlobalNamespaces: []string{"default"},
		SystemNamespaces: []string{"kube-system"},
		Steering:         true,
		APITimeout:       DefaultAPITimeout,
		DelegateTimeout:  DefaultDelegateTimeout,
		BPFFSRoot:        DefaultBPFFSRoot,
		Raw:              append([]byte(nil), data...),
	}
	var (
		multusNS, steerNS, apiTimeout, delegateTimeout string
		globalNS, runtimeConfig, logOptions            json.RawMessage
	)
	fields := []struct {
		key string
		dst any
	}{
		{"cniVersion", &c.CNIVersion}, {"name", &c.Name}, {"type", &c.Type},
		{"kubeconfig", &c.Kubeconfig}, {"clusterNetwork", &c.ClusterNetwork},
		{"defaultNetworks", &c.DefaultNetworks}, {"delegates", &c.Delegates},
		{"confDir", &c.ConfDir}, {"cniDir", &c.CNIDir}, {"binDir", &c.BinDir},
		{"multusCNIDir", &c.MultusCNIDir},
		{"logFile", &c.LogFile}, {"logLevel", &c.LogLevel}, {"logToStderr", &c.LogToStderr},
		{"logOptions", &logOptions}, {"auxiliaryCNIChainName", &c.AuxiliaryCNIChainName},
		{"namespaceIsolation", &c.NamespaceIsolation}, {"globalNamespaces", &globalNS},
		{"systemNamespaces", &c.SystemNamespaces},
		{"multusNamespace", &multusNS}, {"steerNamespace", &steerNS},
		{"readinessindicatorfile", &c.ReadinessIndicatorFile},
		{"retryDeleteOnError", &c.RetryDeleteOnError}, {"strictCapabilities", &c.StrictCapabilities},
		{"capabilities", &c.Capabilities}, {"runtimeConfig", &runtimeConfig},
		{"socketPath", &c.SocketPath}, {"thinFallback", &c.ThinFallback}, {"steering", &c.Steering},
		{"apiTimeout", &apiTimeout}, {"delegateTimeout", &delegateTimeout}, {"bpffsRoot", &c.BPFFSRoot},
	}
	known := make(map[string]bool, len(fields))
	for _, f := range fields {
		known[strings.ToLower(f.key)] = true
		raw, ok := lookupFold(top, f.key)
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			if logKeys[strings.ToLower(f.key)] {
				c.warn("steer config: %q: %s; using the default", f.key, typeErrText(err))
				continue
			}
			return nil, decodeError("steer config: %q: %s", f.key, typeErrText(err))
		}
	}
	for k, v := range top {
		if !known[strings.ToLower(k)] {
			if c.Unknown == nil {
				c.Unknown = map[string]json.RawMessage{}
			}
			c.Unknown[k] = v
		}
	}
	if err := checkFoldedKeys(top, known); err != nil {
		return nil, err
	}
	c.finishLogging(logOptions)
	if err := c.checkPaths(top); err != nil {
		return nil, err
	}
	if err := c.finish(multusNS, steerNS, globalNS, runtimeConfig); err != nil {
		return nil, err
	}
	if err := parseDuration("apiTimeout", apiTimeout, &c.APITimeout); err != nil {
		return nil, err
	}
	if err := parseDuration("delegateTimeout", delegateTimeout, &c.DelegateTimeout); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDuration sets *dst from a Go duration string; "" keeps the default.
func parseDuration(key, s string, dst *time.Duration) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return invalidError(`steer config: %q: %q is not a positive duration like "10s"`, key, s)
	}
	*dst = d
	return nil
}

// lookupFold finds key the way encoding/json matches struct fields: exactly,
// else case-insensitively (the first such key in sorted order, to be
// deterministic where encoding/json would take the last in the document).
func lookupFold(top map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := top[key]; ok {
		return v, true
	}
	var folds []string
	for k := range top {
		if strings.EqualFold(k, key) {
			folds = append(folds, k)
		}
	}
	if len(folds) == 0 {
		return nil, false
	}
	sort.Strings(folds)
	return top[folds[0]], true
}

// typeErrText describes a value of the wrong JSON type without Go type names.
func typeErrText(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("cannot use a JSON %s here (want %s)", te.Value, te.Type)
	}
	return jsonErrText(err)
}

// finish decodes the keys that need more than json.Unmarshal and validates.
func (c *Conf) finish(multusNS, steerNS string, globalNS, runtimeConfig json.RawMessage) error {
	if len(c.Delegates) > 0 && c.ClusterNetwork != "" {
		return invalidError(`steer config: "delegates" and "clusterNetwork" are mutually exclusive`)
	}
	if len(c.Delegates) == 0 && c.ClusterNetwork == "" && c.SocketPath == "" {
		// In thick mode steerd holds the networks; a thin plugin needs them here.
		return invalidError(`steer config: one of "clusterNetwork" or "delegates" is required (or "socketPath" for thick mode)`)
	}
	for i, d := range c.Delegates {
		if _, err := Inspect(d); err != nil {
			return prefixError(fmt.Sprintf("steer config: \"delegates[%d]\"", i), err)
		}
	}
	for i, n := range c.DefaultNetworks {
		if strings.TrimSpace(n) == "" {
			return invalidError(`steer config: "defaultNetworks[%d]" is empty`, i)
		}
	}
	if c.LogLevel != "" {
		c.LogLevel = strings.ToLower(c.LogLevel)
		if !isLogLevel(c.LogLevel) {
			// Multus logs it and keeps its default level: refusing would fail every pod.
			c.warn(`steer config: "logLevel": %q is not one of %s; using the default level`, c.LogLevel, logLevelNames())
			c.LogLevel = ""
		}
	}
	if err := c.setNamespace(multusNS, steerNS); err != nil {
		return err
	}
	if err := c.setGlobalNamespaces(globalNS); err != nil {
		return err
	}
	if err := c.setRuntimeConfig(runtimeConfig); err != nil {
		return err
	}
	// An explicit "" means the default, not the plugin's working directory.
	for _, d := range []struct {
		val *string
		def string
	}{{&c.ConfDir, DefaultConfDir}, {&c.CNIDir, DefaultCNIDir}, {&c.MultusCNIDir, DefaultMultusCNIDir}, {&c.BinDir, DefaultBinDir}, {&c.BPFFSRoot, DefaultBPFFSRoot}} {
		if *d.val == "" {
			*d.val = d.def
		}
	}
	if !filepath.IsAbs(c.BPFFSRoot) {
		return invalidError(`steer config: "bpffsRoot": %q is not an absolute path`, c.BPFFSRoot)
	}
	if c.SocketPath != "" && !filepath.IsAbs(c.SocketPath) {
		return invalidError(`steer config: "socketPath": %q is not an absolute path`, c.SocketPath)
	}
	return nil
}

func (c *Conf) setNamespace(multusNS, steerNS string) error {
	if multusNS != "" && steerNS != "" && multusNS != steerNS {
		return invalidError(`steer config: "steerNamespace" (%q) and "multusNamespace" (%q) disagree`, steerNS, multusNS)
	}
	c.Namespace = DefaultNamespace
	key := "steerNamespace"
	switch {
	case steerNS != "":
		c.Namespace = steerNS
	case multusNS != "":
		c.Namespace, key = multusNS, "multusNamespace"
	}
	if !isDNS1123Label(c.Namespace) {
		return invalidError(`steer config: %q: %q is not a valid namespace name`, key, c.Namespace)
	}
	return nil
}

// setGlobalNamespaces takes the Multus comma-separated string, and also a
// JSON list of strings since that is what people try first.
func (c *Conf) setGlobalNamespaces(raw json.RawMessage) error {
	if raw == nil || string(raw) == "null" {
		return nil
	}
	var parts []string
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if strings.TrimSpace(s) == "" {
			return nil // Multus keeps the default for ""
		}
		parts = strings.Split(s, ",")
	} else if err := json.Unmarshal(raw, &parts); err != nil {
		return decodeError(`steer config: "globalNamespaces": want a comma-separated string`)
	}
	c.GlobalNamespaces = c.GlobalNamespaces[:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			c.GlobalNamespaces = append(c.GlobalNamespaces, p)
		}
	}
	return nil
}

func (c *Conf) setRuntimeConfig(raw json.RawMessage) error {
	if raw == nil || string(raw) == "null" {
		return nil
	}
	if !isJSONObject(raw) {
		return decodeError(`steer config: "runtimeConfig" must be a JSON object`)
	}
	if err := json.Unmarshal(raw, &c.RuntimeConfig); err != nil {
		return decodeError(`steer config: "runtimeConfig": %s`, jsonErrText(err))
	}
	c.RuntimeConfig.Raw = raw
	return nil
}
