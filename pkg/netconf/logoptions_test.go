package netconf

import (
	"strings"
	"testing"
)

// Log settings never fail a config, as an unknown logLevel does not fail Multus': a wrong type
// or value is a warning and the default. logOptions default to Multus' rotation.
func TestLogSettingsNeverFail(t *testing.T) {
	const base = `{"cniVersion":"1.0.0","name":"n","type":"steer","clusterNetwork":"c",`
	for _, tc := range []struct {
		in   string
		want string // in the one warning
		opts LogOptions
	}{
		{`"logFile":"steer.log"`, `"logFile": "steer.log" is not an absolute path`, DefaultLogOptions},
		{`"logFile":5`, `"logFile": cannot use a JSON number`, DefaultLogOptions},
		{`"logLevel":true`, `"logLevel": cannot use a JSON bool`, DefaultLogOptions},
		{`"logToStderr":"no"`, `"logToStderr": cannot use a JSON string`, DefaultLogOptions},
		{`"logOptions":"big"`, `"logOptions": cannot use a JSON string`, DefaultLogOptions},
		{`"logOptions":{"maxAge":"5"}`, `"logOptions": cannot use a JSON string`, DefaultLogOptions},
		{`"logOptions":{"maxSize":-1,"compress":false}`, `"maxSize" is negative (-1); using 100`, LogOptions{MaxAge: 5, MaxSize: 100, MaxBackups: 5}},
	} {
		c, err := ParseConf([]byte(base + tc.in + `}`))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], tc.want) {
			t.Errorf("%s: warnings %q, want one containing %q", tc.in, c.Warnings, tc.want)
		}
		if c.LogFile != "" || c.LogLevel != "" || !c.LogToStderr || c.LogOptions != tc.opts {
			t.Errorf("%s: %q %q %v %+v: not the defaults", tc.in, c.LogFile, c.LogLevel, c.LogToStderr, c.LogOptions)
		}
	}
	c, err := ParseConf([]byte(base + `"logFile":"/var/log/steer.log","logOptions":{"maxAge":1,"maxSize":2,"maxBackups":0,"compress":false}}`))
	if err != nil || len(c.Warnings) != 0 || c.LogOptions != (LogOptions{MaxAge: 1, MaxSize: 2}) {
		t.Errorf("logOptions: %+v %q %v", c.LogOptions, c.Warnings, err)
	}
}
