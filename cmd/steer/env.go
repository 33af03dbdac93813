package main

import (
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/netconf"
)

// checkEnv runs Steer's checks of CNI_CONTAINERID and CNI_IFNAME before skel's. skel refuses
// the same values with messages that do not name the variable, and refuses DEL too, which a
// runtime retries for ever (a pod stuck Terminating). Nothing can be attached under arguments
// ADD refuses, so DEL with them succeeds here. It reports whether the plugin should go on.
func checkEnv() (proceed bool, exitCode int) {
	cmd := os.Getenv("CNI_COMMAND")
	if cmd != "ADD" && cmd != "DEL" && cmd != "CHECK" {
		return true, 0
	}
	var err error
	if e := bpffs.ValidContainerID(os.Getenv("CNI_CONTAINERID")); e != nil {
		err = fmt.Errorf("CNI_CONTAINERID: %w", e)
	} else if e := netconf.ValidateInterfaceName(os.Getenv("CNI_IFNAME")); e != nil {
		err = fmt.Errorf("CNI_IFNAME: %w", e)
	}
	switch {
	case err == nil:
		return true, 0
	case cmd == "DEL":
		return false, 0
	}
	_ = types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "").Print()
	return false, 1
}
