package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steernet/steer/pkg/netconf"
)

func TestLogger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "steer.log")
	conf, err := netconf.ParseConf([]byte(`{"cniVersion":"1.1.0","name":"n","type":"steer","clusterNetwork":"c",
 "logFile":"` + path + `","logLevel":"Warning","logToStderr":false}`))
	if err != nil {
		t.Fatal(err)
	}
	log, closeLog := newLogger(conf)
	log.Info("not this")
	log.Warn("but this", "k", "v")
	closeLog()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(data); strings.Contains(s, "not this") || !strings.Contains(s, `msg="but this" pid=`) || !strings.Contains(s, "k=v") {
		t.Errorf("log file:\n%s", s)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode: %v %v", fi.Mode(), err)
	}

	// An unknown level is logged as a warning, and the default (info) applies.
	path = filepath.Join(t.TempDir(), "steer.log")
	conf, err = netconf.ParseConf([]byte(`{"clusterNetwork":"c","logFile":"` + path + `","logLevel":"XXXX","logToStderr":false}`))
	if err != nil {
		t.Fatal(err)
	}
	log, closeLog = newLogger(conf)
	log.Info("info kept")
	log.Debug("not debug")
	closeLog()
	data, err = os.ReadFile(path)
	if s := string(data); err != nil || !strings.Contains(s, `level=WARN msg="steer config: \"logLevel\": \"xxxx\"`) ||
		!strings.Contains(s, "info kept") || strings.Contains(s, "not debug") {
		t.Errorf("log file with an unknown level: %v\n%s", err, s)
	}

	// No file, no stderr: nothing, and no failure.
	conf.LogFile, conf.LogToStderr = "", false
	quiet, closeQuiet := newLogger(conf)
	quiet.Error("dropped")
	closeQuiet()
}
