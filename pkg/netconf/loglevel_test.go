package netconf

import (
	"strings"
	"testing"
)

// The levels grow in severity in list order, and the warning names them as doc.go does.
func TestLogLevels(t *testing.T) {
	for i := 1; i < len(logLevels); i++ {
		if logLevels[i].level <= logLevels[i-1].level {
			t.Errorf("%s does not log less than %s", logLevels[i].name, logLevels[i-1].name)
		}
	}
	if _, ok := SlogLevel(""); ok {
		t.Error(`SlogLevel("") ok`)
	}
	c, err := ParseConf([]byte(`{"cniVersion":"1.0.0","name":"n","type":"steer","logLevel":"loud","delegates":[{"cniVersion":"1.0.0","name":"p","type":"bridge"}]}`))
	if err != nil || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], `is not one of debug, verbose, info, warning, error, panic`) {
		t.Errorf("err = %v, warnings %q", err, c.Warnings)
	}
}
