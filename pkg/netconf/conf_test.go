package netconf

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfDefaults(t *testing.T) {
	in := []byte(`{"cniVersion":"1.0.0","name":"steer","type":"steer","clusterNetwork":"flannel"}`)
	c, err := ParseConf(in)
	if err != nil {
		t.Fatal(err)
	}
	want := &Conf{
		CNIVersion: "1.0.0", Name: "steer", Type: "steer", ClusterNetwork: "flannel",
		ConfDir: DefaultConfDir, CNIDir: DefaultCNIDir, MultusCNIDir: DefaultMultusCNIDir, BinDir: DefaultBinDir,
		LogToStderr: true, LogOptions: DefaultLogOptions, GlobalNamespaces: []string{"default"}, SystemNamespaces: []string{"kube-system"},
		Namespace: DefaultNamespace, Steering: true, APITimeout: DefaultAPITimeout, DelegateTimeout: DefaultDelegateTimeout, BPFFSRoot: DefaultBPFFSRoot,
		Raw: in,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.ThickMode() || !c.IsSystemNamespace("kube-system") || !c.IsGlobalNamespace("default") {
		t.Error("helpers disagree with defaults")
	}
}

// An unknown logLevel is a warning and the default level, as in Multus: refusing the config
// failed every pod of the node.
func TestParseConfUnknownLogLevel(t *testing.T) {
	c, err := ParseConf([]byte(`{"clusterNetwork":"n","logLevel":"XXXX"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "" || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `"logLevel": "xxxx"`) {
		t.Errorf("LogLevel %q, warnings %q", c.LogLevel, c.Warnings)
	}
}

func TestParseConfAllKeys(t *testing.T) {
	in := []byte(`{
	  "cniVersion": "0.4.0", "name": "n", "type": "steer",
	  "kubeconfig": "/k", "clusterNetwork": "/etc/cni/net.d/10-flannel.conflist",
	  "defaultNetworks": ["mon"], "confDir": "/c", "cniDir": "/d", "binDir": "/b",
	  "multusCNIDir": "/m", "logFile": "/l", "logLevel": "VERBOSE", "logToStderr": false,
	  "namespaceIsolation": true, "globalNamespaces": " default , shared,, ",
	  "systemNamespaces": [], "multusNamespace": "nets",
	  "ReadinessIndicatorFile": "/run/ready", "retryDeleteOnError": true, "strictCapabilities": true,
	  "capabilities": {"portMappings": true},
	  "runtimeConfig": {"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}],
	                    "bandwidth": {"ingressRate": 5}, "io.kubernetes.cri.pod-annotations": {}},
	  "socketPath": "/run/steer/steerd.sock", "steering": false, "apiTimeout": "1m30s", "delegateTimeout": "45s",
	  "bpffsRoot": "/sys/fs/bpf/x", "logOptions": {"maxAge": 7}, "auxiliaryCNIChainName": "chain", "prevResult": null
	}`)
	c, err := ParseConf(in)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DefaultNetworks", c.DefaultNetworks, []string{"mon"}},
		{"LogLevel", c.LogLevel, "verbose"},
		{"MultusCNIDir", c.MultusCNIDir, "/m"},
		{"StrictCapabilities", c.StrictCapabilities, true},
		{"LogToStderr", c.LogToStderr, false},
		{"GlobalNamespaces", c.GlobalNamespaces, []string{"default", "shared"}},
		{"SystemNamespaces", c.SystemNamespaces, []string{}},
		{"Namespace", c.Namespace, "nets"},
		{"ReadinessIndicatorFile (case-insensitive key)", c.ReadinessIndicatorFile, "/run/ready"},
		{"RetryDeleteOnError", c.RetryDeleteOnError, true},
		{"Capabilities", c.Capabilities, map[string]bool{"portMappings": true}},
		{"PortMappings", c.RuntimeConfig.PortMappings, []PortMapping{{HostPort: 80, ContainerPort: 8080, Protocol: "tcp"}}},
		{"Bandwidth", c.RuntimeConfig.Bandwidth, &Bandwidth{IngressRate: 5}},
		{"SocketPath", c.SocketPath, "/run/steer/steerd.sock"},
		{"Steering", c.Steering, false},
		{"APITimeout", c.APITimeout, 90 * time.Second},
		{"DelegateTimeout", c.DelegateTimeout, 45 * time.Second},
		{"BPFFSRoot", c.BPFFSRoot, "/sys/fs/bpf/x"},
		{"LogOptions", c.LogOptions, LogOptions{MaxAge: 7, MaxSize: 100, MaxBackups: 5, Compress: true}},
		{"AuxiliaryCNIChainName", c.AuxiliaryCNIChainName, "chain"},
		{"Unknown", c.Unknown, map[string]json.RawMessage{"prevResult": json.RawMessage(`null`)}},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	if !bytes.Contains(c.RuntimeConfig.Raw, []byte("io.kubernetes.cri.pod-annotations")) {
		t.Errorf("RuntimeConfig.Raw lost keys: %s", c.RuntimeConfig.Raw)
	}
	if !c.ThickMode() {
		t.Error("ThickMode() = false with a socketPath")
	}
}

func TestParseConfDelegatesKeepBytes(t *testing.T) {
	d0 := `{"cniVersion":"1.0.0","type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true},"x-vendor":{"n":12345678901234567890.5e0}}`
	d1 := "{ \"name\" : \"lan\",\n \"plugins\" : [ {\"type\":\"macvlan\",\"master\":\"eth1\",\"unmodelled\":[1,2,{}]}, {\"type\":\"tuning\"} ] }"
	in := []byte(`{"name":"steer","type":"steer","delegates":[` + d0 + `, ` + d1 + `]}`)
	c, err := ParseConf(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Delegates) != 2 || string(c.Delegates[0]) != d0 || string(c.Delegates[1]) != d1 {
		t.Errorf("delegates changed:\n%s\n%s", c.Delegates[0], c.Delegates[1])
	}
	in[0] = ' ' // Raw must be a copy
	if c.Raw[0] != '{' {
		t.Error("Raw aliases the input")
	}
}

func TestParseConfNamespaces(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"steerNamespace":"a"`, "a"},
		{`"multusNamespace":"b"`, "b"},
		{`"steerNamespace":"c","multusNamespace":"c"`, "c"},
		{`"globalNamespaces":["x"]`, DefaultNamespace},
	} {
		c, err := ParseConf([]byte(`{"clusterNetwork":"n",` + tc.in + `}`))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if c.Namespace != tc.want {
			t.Errorf("%s: Namespace = %q, want %q", tc.in, c.Namespace, tc.want)
		}
	}
}

func TestParseConfThickWithoutNetworks(t *testing.T) {
	c, err := ParseConf([]byte(`{"name":"steer","type":"steer","socketPath":"/run/steer.sock"}`))
	if err != nil || !c.ThickMode() {
		t.Fatalf("thick conf: %v, %+v", err, c)
	}
}

func TestParseConfNullAndEmptyKeepDefaults(t *testing.T) {
	c, err := ParseConf([]byte(`{"clusterNetwork":"n","confDir":"","steering":null,"apiTimeout":null,"globalNamespaces":""}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ConfDir != DefaultConfDir || !c.Steering || c.APITimeout != DefaultAPITimeout ||
		!reflect.DeepEqual(c.GlobalNamespaces, []string{"default"}) {
		t.Errorf("defaults lost: %+v", c)
	}
}

func TestParseConfErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		code uint
		want []string
	}{
		{"empty", ``, codeDecode, []string{"not valid JSON"}},
		{"syntax", `{"clusterNetwork":`, codeDecode, []string{"invalid JSON at byte 18"}},
		{"array", `[1]`, codeDecode, []string{"must be a JSON object"}},
		{"null", `null`, codeDecode, []string{"must be a JSON object"}},
		{"trailing", `{"clusterNetwork":"n"} x`, codeDecode, []string{"invalid JSON"}},
		{"both", `{"clusterNetwork":"n","delegates":[{"type":"x"}]}`, codeInvalid, []string{`"delegates"`, `"clusterNetwork"`, "mutually exclusive"}},
		{"neither", `{"name":"steer"}`, codeInvalid, []string{`"clusterNetwork"`, `"delegates"`}},
		{"empty delegates", `{"delegates":[]}`, codeInvalid, []string{`"delegates"`}},
		{"delegate no type", `{"delegates":[{"type":"a"},{"name":"x"}]}`, codeInvalid, []string{`"delegates[1]"`, `"type"`}},
		{"delegate not object", `{"delegates":["flannel"]}`, codeDecode, []string{`"delegates[0]"`, "JSON object"}},
		{"delegate empty plugins", `{"delegates":[{"plugins":[]}]}`, codeInvalid, []string{`"delegates[0]"`, "empty"}},
		{"delegate plugin no type", `{"delegates":[{"plugins":[{"type":"a"},{}]}]}`, codeInvalid, []string{`plugins[1]`, `"type"`}},
		{"delegates not list", `{"delegates":{"type":"x"}}`, codeDecode, []string{`"delegates"`}},
		{"steering type", `{"clusterNetwork":"n","steering":"yes"}`, codeDecode, []string{`"steering"`, "string"}},
		{"clusterNetwork type", `{"clusterNetwork":5}`, codeDecode, []string{`"clusterNetwork"`}},
		{"case-folded key type", `{"CLUSTERNETWORK":true}`, codeDecode, []string{`"clusterNetwork"`}},
		{"bad duration", `{"clusterNetwork":"n","apiTimeout":"10 parsecs"}`, codeInvalid, []string{`"apiTimeout"`, "10 parsecs"}},
		{"zero duration", `{"clusterNetwork":"n","apiTimeout":"0s"}`, codeInvalid, []string{`"apiTimeout"`}},
		{"negative duration", `{"clusterNetwork":"n","apiTimeout":"-1s"}`, codeInvalid, []string{`"apiTimeout"`}},
		{"numeric duration", `{"clusterNetwork":"n","apiTimeout":10}`, codeDecode, []string{`"apiTimeout"`}},
		{"bad delegate timeout", `{"clusterNetwork":"n","delegateTimeout":"forever"}`, codeInvalid, []string{`"delegateTimeout"`, "forever"}},
		{"relative bpffsRoot", `{"clusterNetwork":"n","bpffsRoot":"bpf"}`, codeInvalid, []string{`"bpffsRoot"`}},
		{"relative socket", `{"clusterNetwork":"n","socketPath":"steerd.sock"}`, codeInvalid, []string{`"socketPath"`}},
		{"namespaces disagree", `{"clusterNetwork":"n","steerNamespace":"a","multusNamespace":"b"}`, codeInvalid, []string{`"steerNamespace"`, `"multusNamespace"`}},
		{"bad namespace", `{"clusterNetwork":"n","multusNamespace":"Kube_System"}`, codeInvalid, []string{`"multusNamespace"`, "Kube_System"}},
		{"empty default network", `{"clusterNetwork":"n","defaultNetworks":["a"," "]}`, codeInvalid, []string{`"defaultNetworks[1]"`}},
		{"globalNamespaces number", `{"clusterNetwork":"n","globalNamespaces":3}`, codeDecode, []string{`"globalNamespaces"`}},
		{"runtimeConfig not object", `{"clusterNetwork":"n","runtimeConfig":[]}`, codeDecode, []string{`"runtimeConfig"`}},
		{"runtimeConfig bad port", `{"clusterNetwork":"n","runtimeConfig":{"portMappings":[{"hostPort":"80"}]}}`, codeDecode, []string{`"runtimeConfig"`, "hostPort"}},
		{"capabilities type", `{"clusterNetwork":"n","capabilities":{"ips":"yes"}}`, codeDecode, []string{`"capabilities"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConf([]byte(tc.in))
			if err == nil {
				t.Fatalf("ParseConf(%s) = %+v, want error", tc.in, c)
			}
			checkErr(t, err, tc.code, tc.want...)
		})
	}
}
