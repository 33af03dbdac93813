package netconf

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// LogOptions is Multus' "logOptions": how logFile is rotated. Rotation always applies to a
// logFile, with Multus' defaults (lumberjack's settings in Multus' logging package).
type LogOptions struct {
	MaxAge     int  // days a rotated file is kept; 0 keeps them regardless of age
	MaxSize    int  // megabytes before the file is rotated
	MaxBackups int  // rotated files kept; 0 keeps them all (within MaxAge)
	Compress   bool // gzip rotated files
}

// DefaultLogOptions are Multus' defaults for a logFile.
var DefaultLogOptions = LogOptions{MaxAge: 5, MaxSize: 100, MaxBackups: 5, Compress: true}

// logKeys are the logging keys: a value of the wrong type or shape is a warning and the
// default, never a failed config (logging must not fail every pod of the node).
var logKeys = map[string]bool{"logfile": true, "loglevel": true, "logtostderr": true, "logoptions": true}

// finishLogging validates the logging keys after decoding, turning every problem into a
// warning.
func (c *Conf) finishLogging(rawOptions json.RawMessage) {
	if c.LogFile != "" && !filepath.IsAbs(c.LogFile) {
		c.warn(`steer config: "logFile": %q is not an absolute path; not logging to a file`, c.LogFile)
		c.LogFile = ""
	}
	c.LogOptions = DefaultLogOptions
	if len(rawOptions) == 0 || string(rawOptions) == "null" {
		return
	}
	var o struct {
		MaxAge     *int  `json:"maxAge"`
		MaxSize    *int  `json:"maxSize"`
		MaxBackups *int  `json:"maxBackups"`
		Compress   *bool `json:"compress"`
	}
	if err := json.Unmarshal(rawOptions, &o); err != nil {
		c.warn(`steer config: "logOptions": %s; using the defaults`, typeErrText(err))
		return
	}
	for _, f := range []struct {
		key string
		val *int
		dst *int
	}{{"maxAge", o.MaxAge, &c.LogOptions.MaxAge}, {"maxSize", o.MaxSize, &c.LogOptions.MaxSize}, {"maxBackups", o.MaxBackups, &c.LogOptions.MaxBackups}} {
		switch {
		case f.val == nil:
		case *f.val < 0:
			c.warn(`steer config: "logOptions": %q is negative (%d); using %d`, f.key, *f.val, *f.dst)
		default:
			*f.dst = *f.val
		}
	}
	if o.Compress != nil {
		c.LogOptions.Compress = *o.Compress
	}
}

// warn records a warning for the log.
func (c *Conf) warn(format string, args ...any) {
	c.Warnings = append(c.Warnings, fmt.Sprintf(format, args...))
}
