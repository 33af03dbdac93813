package netconf

import (
	"log/slog"
	"strings"
)

// logLevels are the Multus logLevel names, most verbose first, and the slog level the plugin
// logs at for each. The one list: ParseConf validates against it and cmd/steer maps through it.
var logLevels = []struct {
	name  string
	level slog.Level
}{
	{"debug", slog.LevelDebug},
	{"verbose", slog.LevelDebug + 2},
	{"info", slog.LevelInfo},
	{"warning", slog.LevelWarn},
	{"error", slog.LevelError},
	{"panic", slog.LevelError + 4},
}

// SlogLevel returns the slog level of a logLevel name as ParseConf leaves it (lower case), and
// false for "" or a name ParseConf rejects.
func SlogLevel(name string) (slog.Level, bool) {
	for _, l := range logLevels {
		if l.name == name {
			return l.level, true
		}
	}
	return 0, false
}

func isLogLevel(name string) bool {
	_, ok := SlogLevel(name)
	return ok
}

func logLevelNames() string {
	names := make([]string, len(logLevels))
	for i, l := range logLevels {
		names[i] = l.name
	}
	return strings.Join(names, ", ")
}
