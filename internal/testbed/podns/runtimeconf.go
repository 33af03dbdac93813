package podns

import "github.com/containernetworking/cni/libcni"

// RuntimeConf is what a container runtime (containerd's CRI) passes to CNI for a pod's
// sandbox: eth0 in netnsPath, and the pod's identity as CNI_ARGS.
func RuntimeConf(containerID, netnsPath, namespace, name, uid string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       netnsPath,
		IfName:      "eth0",
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", namespace},
			{"K8S_POD_NAME", name},
			{"K8S_POD_INFRA_CONTAINER_ID", containerID},
			{"K8S_POD_UID", uid},
		},
	}
}
