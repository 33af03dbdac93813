package netconf

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxInterfaceNameLen is IFNAMSIZ-1: the kernel keeps a trailing NUL.
const MaxInterfaceNameLen = 15

// ValidateInterfaceName applies the kernel's dev_valid_name rules (length,
// "." and "..", '/', ':' and whitespace) and also refuses control bytes,
// invalid UTF-8 and invisible characters (zero-width, bidi overrides): the
// kernel would accept them, but they only come from a mistake or from
// someone making "eth0\u200b" look like eth0 in every listing.
func ValidateInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) > MaxInterfaceNameLen:
		return fmt.Errorf("interface name %q is %d bytes, the kernel allows at most %d", name, len(name), MaxInterfaceNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is reserved", name)
	case !utf8.ValidString(name):
		// The kernel takes any bytes, but the name is reported in the
		// network-status annotation, which is JSON.
		return fmt.Errorf("interface name %q is not valid UTF-8", name)
	}
	for i := 0; i < len(name); i++ {
		// 0xa0 is whitespace for the kernel's Latin-1 isspace().
		if c := name[i]; c <= ' ' || c == 0x7f || c == 0xa0 || c == '/' || c == ':' {
			return fmt.Errorf("interface name %q contains %q: '/', ':', whitespace and control characters are not allowed", name, c)
		}
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("interface name %q contains the invisible character %U", name, r)
		}
	}
	return nil
}

// ValidatePodRef checks the pod namespace and name a runtime passes in CNI_ARGS: they go into
// apiserver paths and logs, so anything Kubernetes could not have named is refused. Empty
// values are fine: outside Kubernetes there are none.
func ValidatePodRef(namespace, name string) error {
	if namespace != "" && !isDNS1123Label(namespace) {
		return fmt.Errorf("pod namespace %q is not a Kubernetes namespace name", namespace)
	}
	if name != "" && !isDNS1123Subdomain(name) {
		return fmt.Errorf("pod name %q is not a Kubernetes object name", name)
	}
	return nil
}

// isDNS1123Label matches Kubernetes namespace names: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes.
func isDNS1123Label(s string) bool {
	return len(s) <= 63 && isLabelChars(s)
}

// isDNS1123Subdomain matches Kubernetes object names (NetworkAttachmentDefinitions):
// dot-separated labels, at most 253 bytes in total. Like Kubernetes, and
// unlike DNS, it does not limit the length of each label.
func isDNS1123Subdomain(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !isLabelChars(label) {
			return false
		}
	}
	return true
}

// isLabelChars matches [a-z0-9]([-a-z0-9]*[a-z0-9])? of any length.
func isLabelChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// validateIPOrCIDR accepts what Multus accepts for "ips": an address or an
// address with a prefix length.
func validateIPOrCIDR(s string) error {
	if strings.Contains(s, "/") {
		if _, _, err := net.ParseCIDR(s); err != nil {
			return fmt.Errorf("invalid CIDR %q", s)
		}
		return nil
	}
	if net.ParseIP(s) == nil {
		return fmt.Errorf("invalid IP address %q", s)
	}
	return nil
}
