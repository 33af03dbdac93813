package netconf

import (
	"strings"
	"testing"
)

// Paths must be absolute (a relative "cniDir" wrote under the runtime's working directory),
// "" and null are not the default where Steer keeps state, and the pin root must be safe.
func TestParseConfPaths(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"cniDir":"x"`, `"cniDir": "x" is not an absolute path`},
		{`"cniDir":""`, `"cniDir": "" is not a path`},
		{`"cniDir":null`, `"cniDir": null is not a path`},
		{`"CNIDIR":null`, `"cniDir": null is not a path`},
		{`"bpffsRoot":""`, `"bpffsRoot": "" is not a path`},
		{`"bpffsRoot":null`, `"bpffsRoot": null is not a path`},
		{`"bpffsRoot":"/sys/fs/bpf"`, `"bpffsRoot": bpffs root "/sys/fs/bpf"`},
		{`"bpffsRoot":"/sys/fs/bpf/../x"`, `not a clean path`},
		{`"confDir":"net.d"`, `"confDir"`},
		{`"binDir":"."`, `"binDir"`},
		{`"multusCNIDir":"multus"`, `"multusCNIDir"`},
		{`"kubeconfig":"kc"`, `"kubeconfig"`},
		{`"readinessindicatorfile":"ready"`, `"readinessindicatorfile"`},
		{`"defaultNetworks":["./x.conf"]`, `"./x.conf" is a relative path`},
	} {
		_, err := ParseConf([]byte(`{"clusterNetwork":"n",` + tc.in + `}`))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.in, err, tc.want)
			continue
		}
		mustCNIError(t, err)
	}
	if _, err := ParseConf([]byte(`{"clusterNetwork":"etc/x.conf"}`)); err == nil {
		t.Error("relative clusterNetwork path accepted")
	}
	c, err := ParseConf([]byte(`{"clusterNetwork":"/etc/cni/net.d/x.conf","confDir":"","binDir":null,"cniDir":"/var/lib/cni/s"}`))
	if err != nil || c.ConfDir != DefaultConfDir || c.BinDir != DefaultBinDir || c.CNIDir != "/var/lib/cni/s" {
		t.Errorf("ParseConf = %+v, %v", c, err)
	}
}

// One key twice in different case is refused: steer read one value, skel the other
// ("cniVersion" 1.0.0 and "CNIVERSION" 0.3.1 validated 0.3.1 and printed a 1.0.0 result).
func TestParseConfFoldedDuplicateKeys(t *testing.T) {
	for _, in := range []string{
		`{"cniVersion":"1.0.0","CNIVERSION":"0.3.1","clusterNetwork":"n"}`,
		`{"clusterNetwork":"n","ClusterNetwork":"m"}`,
	} {
		_, err := ParseConf([]byte(in))
		if err == nil || !strings.Contains(err.Error(), "same key in different case") {
			t.Errorf("%s: %v", in, err)
			continue
		}
		mustCNIError(t, err)
	}
	if _, err := ParseConf([]byte(`{"CNIVERSION":"0.3.1","clusterNetwork":"n","x":1,"X":2}`)); err != nil {
		t.Errorf("one spelling of a key, and unknown keys in any case: %v", err)
	}
}
