package daemon

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// Thick mode: steerd gets the arguments as JSON, where they may hold what no environment
// variable can (NUL). Hostile container IDs and interface names get CNI error 4 on ADD, DEL of
// them succeeds (nothing can be attached under them), and nothing is written anywhere.
func TestServeHostileArguments(t *testing.T) {
	dir := t.TempDir()
	cniDir, bpfRoot := filepath.Join(dir, "cni-steer"), filepath.Join(dir, "bpf")
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"steer-net","type":"steer","socketPath":"/run/steer/steerd.sock",`+
		`"steering":false,"cniDir":%q,"bpffsRoot":%q}`, cniDir, bpfRoot)
	ts := startServer(t, filepath.Join(dir, "run", "steerd.sock"))

	for _, tc := range []struct {
		containerID, ifName string
		key                 string // the variable the error must name
	}{
		{"a\x00b", "eth0", "CNI_CONTAINERID"},
		{"\x00", "eth0", "CNI_CONTAINERID"},
		{"../../../tmp/steer-escape", "eth0", "CNI_CONTAINERID"},
		{"", "eth0", "CNI_CONTAINERID"},
		{"c1", "x\x00", "CNI_IFNAME"},
		{"c1", "eth0\x00../../steer-escape", "CNI_IFNAME"},
		{"c1", "../steer-escape", "CNI_IFNAME"},
		{"c1", "", "CNI_IFNAME"},
	} {
		add := request("ADD", tc.containerID, tc.ifName, "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p", conf)
		if (strings.Contains(tc.containerID, "\x00") || strings.Contains(tc.ifName, "\x00")) && !strings.Contains(add, `\u0000`) {
			t.Fatalf("request %s does not carry the NUL", add)
		}
		res := ts.post(t, add)
		if res.Error == nil || res.Error.Code != types.ErrInvalidEnvironmentVariables || !strings.HasPrefix(res.Error.Msg, tc.key+": ") {
			t.Errorf("ADD %q %q: %+v, want code 4 naming %s", tc.containerID, tc.ifName, res, tc.key)
		} else {
			t.Logf("ADD %q %q: %s", tc.containerID, tc.ifName, res.Error.Msg)
		}
		if res := ts.post(t, request("DEL", tc.containerID, tc.ifName, "", conf)); res.Error != nil || res.Result != nil {
			t.Errorf("DEL %q %q: %+v, want success", tc.containerID, tc.ifName, res)
		}
	}
	// steerd validates the command too, and does not make a metric series of each one.
	for i := range 3 {
		cmd := fmt.Sprintf("EXEC\x00%d", i)
		if res := ts.post(t, request(cmd, "c1", "eth0", "", conf)); res.Error == nil || res.Error.Code != types.ErrInvalidEnvironmentVariables {
			t.Errorf("command %q: %+v", cmd, res)
		}
	}
	families, err := ts.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, mf := range families {
		if mf.GetName() != "steer_cni_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "verb" {
					verbs = append(verbs, l.GetValue())
				}
			}
		}
	}
	slices.Sort(verbs)
	if want := []string{"ADD", "DEL", "unknown"}; !slices.Equal(verbs, want) {
		t.Errorf("request metrics by verb %q, want %q", verbs, want)
	}

	for _, d := range []string{cniDir, bpfRoot} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s was created (%v)", d, err)
		}
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "escape") {
			t.Errorf("%s written", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Other tests write to /tmp at the same time: look only for the payload's name.
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), "steer-escape") {
			t.Errorf("%s exists", filepath.Join(os.TempDir(), e.Name()))
		}
	}
}

// The daemon's own network namespace (the host's) as CNI_NETNS: ADD and CHECK are refused
// with code 8 before anything runs, DEL succeeds.
func TestServeHostNetns(t *testing.T) {
	dir := t.TempDir()
	cniDir := filepath.Join(dir, "cni-steer")
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"steer-net","type":"steer","socketPath":"/run/steer/steerd.sock",`+
		`"steering":false,"cniDir":%q,"bpffsRoot":"/sys/fs/bpf/steer-unused","delegates":[{"cniVersion":"1.0.0","name":"x","type":"x"}]}`, cniDir)
	ts := startServer(t, filepath.Join(dir, "run", "steerd.sock"))
	for _, verb := range []string{"ADD", "CHECK"} {
		res := ts.post(t, request(verb, "hostns", "eth0", "", conf))
		if res.Error == nil || res.Error.Code != types.ErrInvalidNetNS || !strings.Contains(res.Error.Msg, "own network namespace") {
			t.Errorf("%s in the host netns: %+v, want code 8", verb, res)
		}
	}
	if res := ts.post(t, request("DEL", "hostns", "eth0", "", conf)); res.Error != nil {
		t.Errorf("DEL: %+v", res.Error)
	}
	if _, err := os.Stat(cniDir); !os.IsNotExist(err) {
		t.Errorf("%s was created (%v)", cniDir, err)
	}
}
