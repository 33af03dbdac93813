package netconf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNetworkConfigFromSpec(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"name kept", `{"name":"own","type":"macvlan"}`, `{"name":"own","type":"macvlan"}`},
		{"name injected after the last member, rest byte-identical",
			"{\n  \"cniVersion\": \"1.0.0\",\n  \"type\": \"macvlan\",\n  \"x\": 1.50e3\n}",
			"{\n  \"cniVersion\": \"1.0.0\",\n  \"type\": \"macvlan\",\n  \"x\": 1.50e3,\"name\":\"nad\"\n}"},
		{"empty name replaced", `{"type":"bridge","name":"" ,"z":{}}`, `{"type":"bridge","name":"nad" ,"z":{}}`},
		{"null name replaced", `{"name":null,"plugins":[{"type":"a"}]}`, `{"name":"nad","plugins":[{"type":"a"}]}`},
		{"last duplicate counts", `{"name":"x","name":"","type":"a"}`, `{"name":"x","name":"nad","type":"a"}`},
		{"escaped key", `{"n\u0061me":"esc","type":"a"}`, `{"n\u0061me":"esc","type":"a"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NetworkConfig("nad", tc.in, "/nonexistent")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestNetworkConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, nad, in string
		code          uint
		want          []string
	}{
		{"no nad name", "", `{"type":"a"}`, codeInvalid, []string{"name is empty"}},
		{"not json", "nad", `{"type":`, codeDecode, []string{`"nad"`, "JSON"}},
		{"not object", "nad", `["type"]`, codeDecode, []string{`"nad"`, "JSON object"}},
		{"no type", "nad", `{"cniVersion":"1.0.0"}`, codeInvalid, []string{`"nad"`, `"type"`, `"plugins"`}},
		{"type not string", "nad", `{"type":1}`, codeDecode, []string{`"nad"`, `"type"`}},
		{"name not string", "nad", `{"type":"a","name":1}`, codeDecode, []string{`"nad"`, `"name"`}},
		{"empty plugins", "nad", `{"plugins":[]}`, codeInvalid, []string{"empty"}},
		{"plugin not object", "nad", `{"plugins":[1]}`, codeDecode, []string{"plugins[0]"}},
		{"capabilities type", "nad", `{"type":"a","capabilities":{"ips":1}}`, codeDecode, []string{"capabilities"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NetworkConfig(tc.nad, tc.in, t.TempDir())
			checkErr(t, err, tc.code, tc.want...)
		})
	}
}

func TestNetworkConfigFromConfDir(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"00-broken.conf":      `{"name":`,
		"05-huge.conf":        `{"name":"huge","type":"a","pad":"` + string(make([]byte, maxConfFileSize)) + `"}`,
		"10-lan.conf":         `{"name":"lan","type":"macvlan","from":"conf"}`,
		"20-lan.conflist":     `{"name":"lan","plugins":[{"type":"macvlan"}],"from":"conflist"}`,
		"30-dmz.json":         `{"name":"dmz","type":"ipvlan"}`,
		"40-notype.conf":      `{"name":"notype"}`,
		"50-other.txt":        `{"name":"txt","type":"a"}`,
		"sub/60-nested.conf":  `{"name":"nested","type":"a"}`,
		"70-numname.conflist": `{"name":5,"plugins":[{"type":"a"}]}`,
	})
	for _, tc := range []struct{ name, want string }{
		{"lan", `{"name":"lan","plugins":[{"type":"macvlan"}],"from":"conflist"}`},
		{"dmz", `{"name":"dmz","type":"ipvlan"}`},
	} {
		got, err := NetworkConfig(tc.name, " \n", dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s: got %s", tc.name, got)
		}
	}
	_, err := NetworkConfig("notype", "", dir)
	checkErr(t, err, codeInvalid, "40-notype.conf", `"type"`)
	for _, missing := range []string{"txt", "nested", "huge", "nope"} {
		_, err := NetworkConfig(missing, "", dir)
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", missing, err)
		}
	}
	_, err = NetworkConfig("nope", "", dir)
	for _, w := range []string{"00-broken.conf", "05-huge.conf", "70-numname.conflist"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("not-found error %v does not list skipped %s", err, w)
		}
	}
	if _, err := NetworkConfig("x", "", filepath.Join(dir, "missing")); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestClusterNetworkConfig(t *testing.T) {
	confDir, other := t.TempDir(), t.TempDir()
	writeFiles(t, confDir, map[string]string{"10-flannel.conflist": `{"name":"cbr0","plugins":[{"type":"flannel"}]}`})
	writeFiles(t, other, map[string]string{
		"dir/20-b.conf":     `{"name":"b","type":"bridge"}`,
		"dir/10-a.conflist": `{"name":"a","plugins":[{"type":"calico"}]}`,
		"dir/05-readme.md":  `x`,
		"file.conf":         `{"name":"f","type":"ptp"}`,
		"list.conflist":     `{"name":"l","plugins":[{"type":"ptp"}]}`,
		"bad.conf":          `{"name":"bad"}`,
		"empty/readme":      `x`,
	})
	for _, tc := range []struct{ ref, want string }{
		{"cbr0", "cbr0"},
		{filepath.Join(other, "dir"), "a"},
		{filepath.Join(other, "file.conf"), "f"},
		{filepath.Join(other, "list.conflist"), "l"},
	} {
		got, err := ClusterNetworkConfig(tc.ref, confDir)
		if err != nil {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		if info, _ := Inspect(got); info.Name != tc.want {
			t.Errorf("%s: got %s", tc.ref, got)
		}
	}
	for _, ref := range []string{"nope", filepath.Join(other, "missing.conf"), filepath.Join(other, "empty")} {
		if _, err := ClusterNetworkConfig(ref, confDir); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", ref, err)
		}
	}
	_, err := ClusterNetworkConfig(filepath.Join(other, "bad.conf"), confDir)
	checkErr(t, err, codeInvalid, "bad.conf", `"type"`)
	_, err = ClusterNetworkConfig("", confDir)
	checkErr(t, err, codeInvalid, "empty")
}

func TestInspect(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ConfInfo
	}{
		{`{"cniVersion":"1.0.0","name":"a","type":"macvlan","capabilities":{"mac":true,"ips":false}}`,
			ConfInfo{Name: "a", CNIVersion: "1.0.0", Types: []string{"macvlan"}, Capabilities: map[string]bool{"mac": true}}},
		{`{"name":"l","plugins":[{"type":"macvlan","capabilities":{"ips":true}},{"type":"tuning","capabilities":{"mac":true}}]}`,
			ConfInfo{Name: "l", IsList: true, Types: []string{"macvlan", "tuning"}, Capabilities: map[string]bool{"ips": true, "mac": true}}},
		{`{"type":"wins","plugins":[{"type":"ignored"}]}`,
			ConfInfo{Types: []string{"wins"}, Capabilities: map[string]bool{}}},
	} {
		got, err := Inspect([]byte(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
	info, _ := Inspect([]byte(`{"type":"a","capabilities":{"mac":true}}`))
	if !info.HasCapability("mac") || info.HasCapability("ips") {
		t.Error("HasCapability")
	}
}

// A .conflist clusterNetwork file gets the plugin files of the directory named after the list
// appended, as libcni's subdirectory loading (which Multus applies to such a file) does.
func TestClusterNetworkConfigSubdirectory(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"10-flannel.conflist":  `{"name":"cbr0","plugins":[{"type":"flannel"}]}`,
		"cbr0/20-tune.conf":    `{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1"}}`,
		"cbr0/10-portmap.conf": `{"type":"portmap","capabilities":{"portMappings":true}}`,
		"cbr0/ignored.json":    `{"type":"nope"}`,
		"20-inline.conflist":   `{"name":"cbr0","loadOnlyInlinedPlugins":true,"plugins":[{"type":"flannel"}]}`,
		"30-nodir.conflist":    `{"name":"other","plugins":[{"type":"flannel"}]}`,
		"40-bad.conflist":      `{"name":"bad","plugins":[{"type":"flannel"}]}`,
		"bad/10-notype.conf":   `{"name":"x"}`,
		"50-badname.conflist":  `{"name":"_x","plugins":[{"type":"flannel"}]}`,
	})
	got, err := ClusterNetworkConfig(filepath.Join(dir, "10-flannel.conflist"), dir)
	want := `{"name":"cbr0","plugins":[{"type":"flannel"},{"type":"portmap","capabilities":{"portMappings":true}},{"type":"tuning","sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1"}}]}`
	if err != nil || string(got) != want {
		t.Errorf("got %s, %v\nwant %s", got, err, want)
	}
	for _, f := range []string{"20-inline.conflist", "30-nodir.conflist"} {
		b, _ := os.ReadFile(filepath.Join(dir, f))
		if got, err := ClusterNetworkConfig(filepath.Join(dir, f), dir); err != nil || string(got) != string(b) {
			t.Errorf("%s: %s, %v", f, got, err)
		}
	}
	for _, f := range []string{"40-bad.conflist", "50-badname.conflist"} {
		if _, err := ClusterNetworkConfig(filepath.Join(dir, f), dir); err == nil {
			t.Errorf("%s accepted", f)
		} else {
			mustCNIError(t, err)
		}
	}
}
