package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/engine"
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
	err := engine.ValidateIdentity(os.Getenv("CNI_CONTAINERID"), os.Getenv("CNI_IFNAME"))
	switch {
	case err == nil:
		return true, 0
	case cmd == "DEL":
		return false, 0
	}
	if te, ok := err.(*types.Error); ok {
		_ = te.Print()
	}
	return false, 1
}
