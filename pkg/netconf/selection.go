package netconf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

const (
	// NetworksAnnotation is the pod annotation that selects networks.
	NetworksAnnotation = "k8s.v1.cni.cncf.io/networks"
	// MaxAnnotationSize bounds NetworksAnnotation. It is checked before any
	// decoding so that a huge annotation fails fast and cheaply.
	MaxAnnotationSize = 64 << 10
)

// NetworkSelectionElement is one network requested by a pod (NPWG
// specification v1.3, section 4.1.2), plus the Steer policy override.
type NetworkSelectionElement struct {
	// Name of the NetworkAttachmentDefinition. Required.
	Name string `json:"name"`
	// Namespace of the NetworkAttachmentDefinition; the pod's by default.
	Namespace string `json:"namespace,omitempty"`
	// IPs requested for the interface ("ips" capability), addresses or CIDRs.
	IPs []string `json:"ips,omitempty"`
	// MAC requested for the interface ("mac" capability).
	MAC string `json:"mac,omitempty"`
	// Interface is the requested interface name in the pod; see IfName.
	Interface string `json:"interface,omitempty"`
	// InterfaceRequest is the pre-v1.1 spelling of Interface, still honoured
	// by Multus; Interface wins when both are set.
	InterfaceRequest string `json:"interfaceRequest,omitempty"`
	// CNIArgs are merged into the delegate config's args.cni (see MergeCNIArgs).
	// Numbers are json.Number so that they are passed on exactly.
	CNIArgs map[string]any `json:"cni-args,omitempty"`
	// PortMappings requested ("portMappings" capability).
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// Bandwidth requested ("bandwidth" capability).
	Bandwidth *Bandwidth `json:"bandwidth,omitempty"`
	// DefaultRoute lists gateway IPs: the pod's default route goes through
	// this interface. At most one IPv4 and one IPv6 gateway in the whole
	// selection. An explicit empty list is kept (non-nil): Multus treats it
	// as "filter default routes" too. No omitempty, so that [] survives a
	// round trip through JSON.
	DefaultRoute []string `json:"default-route"`
	// InfinibandGUID requested ("infinibandGUID" capability).
	InfinibandGUID string `json:"infiniband-guid,omitempty"`
	// DeviceID is a device-plugin device ID ("deviceID" capability when the
	// config declares it; ignored otherwise, as in Multus).
	DeviceID string `json:"deviceID,omitempty"`
	// Steer overrides the network's Steer policy for this pod.
	Steer *PolicySpec `json:"steer,omitempty"`

	// IfName is the interface name the attachment gets in the pod: Interface
	// when set, otherwise an automatic "net<N>" (see AssignInterfaceNames).
	IfName string `json:"-"`
}

// key is "namespace/name", the way networks are named in messages and in the
// network-status annotation.
func (e NetworkSelectionElement) key() string { return e.Namespace + "/" + e.Name }

// PortMapping is one entry of the "portMappings" capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Bandwidth is the "bandwidth" capability, in bits per second and bits.
type Bandwidth struct {
	IngressRate  uint64 `json:"ingressRate"`
	IngressBurst uint64 `json:"ingressBurst"`
	EgressRate   uint64 `json:"egressRate"`
	EgressBurst  uint64 `json:"egressBurst"`
}

// ParseNetworkSelection parses the NetworksAnnotation of a pod in
// podNamespace. It accepts the comma form ("a, b, other-ns/c, ns/d@net5",
// spaces trimmed) and the JSON form (a list of objects); as in Multus, any
// '[', '{' or '"' selects the JSON form. A blank annotation selects nothing
// (nil, nil).
//
// Every element is validated (see the package documentation) and gets its
// IfName from AssignInterfaceNames(elems, 1): the engine calls that again
// when the cluster network or default networks take names or positions.
//
// Errors are *types.Error, code 6 when the JSON does not decode, 7 otherwise,
// with a message naming the element index and the field.
func ParseNetworkSelection(annotation, podNamespace string) ([]NetworkSelectionElement, error) {
	if len(annotation) > MaxAnnotationSize {
		return nil, invalidError("%s: annotation is %d bytes, the limit is %d", NetworksAnnotation, len(annotation), MaxAnnotationSize)
	}
	s := strings.TrimSpace(annotation)
	if s == "" {
		return nil, nil
	}
	var elems []NetworkSelectionElement
	var err error
	if strings.ContainsAny(s, `[{"`) {
		elems, err = decodeSelection([]byte(s))
	} else {
		elems, err = splitSelection(s)
	}
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, nil
	}
	for i := range elems {
		if err := elems[i].normalize(podNamespace); err != nil {
			return nil, prefixError(elemWhere(i, &elems[i]), err)
		}
	}
	if err := checkDefaultRoutes(elems); err != nil {
		return nil, err
	}
	if err := AssignInterfaceNames(elems, 1); err != nil {
		return nil, err
	}
	return elems, nil
}

func elemWhere(i int, e *NetworkSelectionElement) string {
	if e.Name == "" {
		return fmt.Sprintf("%s: element %d", NetworksAnnotation, i)
	}
	return fmt.Sprintf("%s: element %d (%q)", NetworksAnnotation, i, e.Namespace+"/"+e.Name)
}

func decodeSelection(doc []byte) ([]NetworkSelectionElement, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(doc, &raws); err != nil {
		return nil, decodeError("%s: not a JSON list of network selection elements: %s", NetworksAnnotation, jsonErrText(err))
	}
	elems := make([]NetworkSelectionElement, len(raws))
	for i, raw := range raws {
		if !isJSONObject(raw) {
			return nil, decodeError("%s: element %d: must be a JSON object", NetworksAnnotation, i)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&elems[i]); err != nil {
			return nil, decodeError("%s: element %d: %s", NetworksAnnotation, i, jsonErrText(err))
		}
	}
	return elems, nil
}

// splitSelection parses the comma form; each item is [namespace/]name[@ifname].
// As in Multus an empty namespace ("/net") or interface ("net@") means the default.
func splitSelection(s string) ([]NetworkSelectionElement, error) {
	items := strings.Split(s, ",")
	elems := make([]NetworkSelectionElement, 0, len(items))
	for i, item := range items {
		var e NetworkSelectionElement
		rest := item
		if ns, after, ok := strings.Cut(item, "/"); ok {
			e.Namespace, rest = strings.TrimSpace(ns), after
		}
		if strings.Contains(rest, "/") {
			return nil, invalidError("%s: element %d (%q): more than one '/'", NetworksAnnotation, i, strings.TrimSpace(item))
		}
		name, ifname, _ := strings.Cut(rest, "@")
		if strings.Contains(ifname, "@") {
			return nil, invalidError("%s: element %d (%q): more than one '@'", NetworksAnnotation, i, strings.TrimSpace(item))
		}
		e.Name, e.Interface = strings.TrimSpace(name), strings.TrimSpace(ifname)
		elems = append(elems, e)
	}
	return elems, nil
}

// normalize defaults and validates one element; errors name the field.
func (e *NetworkSelectionElement) normalize(podNamespace string) error {
	if e.Interface == "" {
		e.Interface = e.InterfaceRequest
	}
	if e.Namespace == "" {
		e.Namespace = podNamespace
	}
	switch {
	case e.Name == "":
		return invalidError(`"name" is required`)
	case !isDNS1123Subdomain(e.Name):
		return invalidError(`"name": %q is not a valid object name (lower-case DNS-1123 subdomain)`, e.Name)
	case e.Namespace == "":
		return invalidError(`"namespace": not set and the pod namespace is unknown`)
	case !isDNS1123Label(e.Namespace):
		return invalidError(`"namespace": %q is not a valid namespace name (lower-case DNS-1123 label)`, e.Namespace)
	}
	if e.Interface != "" {
		if err := ValidateInterfaceName(e.Interface); err != nil {
			return invalidError(`"interface": %v`, err)
		}
	}
	for i, ip := range e.IPs {
		if err := validateIPOrCIDR(ip); err != nil {
			return invalidError(`"ips[%d]": %v`, i, err)
		}
	}
	if e.MAC != "" {
		if _, err := net.ParseMAC(e.MAC); err != nil {
			return invalidError(`"mac": invalid MAC address %q`, e.MAC)
		}
	}
	if e.InfinibandGUID != "" {
		if _, err := net.ParseMAC(e.InfinibandGUID); err != nil {
			return invalidError(`"infiniband-guid": invalid GUID %q`, e.InfinibandGUID)
		}
	}
	for i, pm := range e.PortMappings {
		if err := pm.validate(); err != nil {
			return invalidError(`"portMappings[%d]": %v`, i, err)
		}
	}
	if _, _, err := gatewayFamilies(e.DefaultRoute); err != nil {
		return invalidError(`"default-route": %v`, err)
	}
	if _, ok := e.CNIArgs[PolicyKey]; ok {
		return invalidError(`"cni-args": key %q is reserved; set the policy with the element's %q key`, PolicyKey, PolicyKey)
	}
	if err := e.Steer.validate(); err != nil {
		return invalidError("%s.%v", PolicyKey, err)
	}
	return nil
}

func (pm PortMapping) validate() error {
	switch {
	case pm.ContainerPort < 1 || pm.ContainerPort > 65535:
		return fmt.Errorf("containerPort %d is not in 1-65535", pm.ContainerPort)
	case pm.HostPort < 1 || pm.HostPort > 65535:
		return fmt.Errorf("hostPort %d is not in 1-65535", pm.HostPort)
	}
	switch strings.ToLower(pm.Protocol) {
	case "", "tcp", "udp", "sctp":
	default:
		return fmt.Errorf("protocol %q is not tcp, udp or sctp", pm.Protocol)
	}
	if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
		return fmt.Errorf("hostIP %q is not an IP address", pm.HostIP)
	}
	return nil
}

// gatewayFamilies validates a default-route list and reports which families
// it covers. Like Multus, one element cannot ask for ECMP.
func gatewayFamilies(gws []string) (v4, v6 bool, err error) {
	for i, gw := range gws {
		ip := net.ParseIP(gw)
		switch {
		case ip == nil:
			return false, false, fmt.Errorf("[%d]: %q is not an IP address", i, gw)
		case ip.To4() != nil && v4, ip.To4() == nil && v6:
			return false, false, fmt.Errorf("[%d]: %q is a second gateway of the same family (ECMP is not supported)", i, gw)
		case ip.To4() != nil:
			v4 = true
		default:
			v6 = true
		}
	}
	return v4, v6, nil
}

// checkDefaultRoutes applies Multus' rule across elements: at most one IPv4
// and one IPv6 default gateway for the pod.
func checkDefaultRoutes(elems []NetworkSelectionElement) error {
	first4, first6 := -1, -1
	for i := range elems {
		v4, v6, _ := gatewayFamilies(elems[i].DefaultRoute)
		if v4 && first4 >= 0 {
			return invalidError(`%s: "default-route": elements %d and %d both set an IPv4 default route`, NetworksAnnotation, first4, i)
		}
		if v6 && first6 >= 0 {
			return invalidError(`%s: "default-route": elements %d and %d both set an IPv6 default route`, NetworksAnnotation, first6, i)
		}
		if v4 {
			first4 = i
		}
		if v6 {
			first6 = i
		}
	}
	return nil
}
