package pluginmain

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
	log, closeLog := NewLogger(conf)
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
	log, closeLog = NewLogger(conf)
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
	quiet, closeQuiet := NewLogger(conf)
	quiet.Error("dropped")
	closeQuiet()
}

// logOptions rotate the log file as Multus' do: past maxSize (megabytes) the file is renamed
// with a timestamp and a new one started; compress gzips the rotated files.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "steer.log")
	conf, err := netconf.ParseConf([]byte(`{"clusterNetwork":"c","logFile":"` + path + `","logToStderr":false,
 "logOptions":{"maxSize":1,"maxBackups":2,"compress":false}}`))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 1000)
	// Three plugin runs of 600 KB each: the second and third rotate.
	for range 3 {
		log, closeLog := NewLogger(conf)
		for range 600 {
			log.Info(line)
		}
		closeLog()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var rotated []string
	for _, e := range entries {
		if e.Name() != "steer.log" {
			rotated = append(rotated, e.Name())
		}
	}
	if len(rotated) == 0 || len(rotated) > 2 {
		t.Errorf("files %v: want one or two rotated beside steer.log", rotated)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() > 1<<20 {
		t.Errorf("steer.log: %v %v", fi, err)
	}
	for _, n := range rotated {
		if !strings.HasPrefix(n, "steer-") || !strings.HasSuffix(n, ".log") {
			t.Errorf("rotated file %s", n)
		}
	}
	// A character device is written as it is, never rotated.
	conf.LogFile = os.DevNull
	log, closeLog := NewLogger(conf)
	log.Info("to nowhere")
	closeLog()
}
