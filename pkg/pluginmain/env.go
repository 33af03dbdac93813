package pluginmain

import (
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/cnienv"
)

// checkEnv runs Steer's checks of CNI_CONTAINERID, CNI_IFNAME and CNI_NETNS before skel's.
// skel refuses the same values with messages that do not name the variable (the host's netns
// only after the verb ran), and refuses DEL too, which a runtime retries for ever (a pod stuck
// Terminating). Nothing can be attached under arguments ADD refuses, so DEL with them
// succeeds here. It reports whether the plugin should go on.
func checkEnv() (proceed bool, exitCode int) {
	cmd := os.Getenv("CNI_COMMAND")
	if cmd != "ADD" && cmd != "DEL" && cmd != "CHECK" {
		return true, 0
	}
	err := cnienv.ValidateIdentity(os.Getenv("CNI_CONTAINERID"), os.Getenv("CNI_IFNAME"))
	netns := os.Getenv("CNI_NETNS")
	switch {
	case err != nil && cmd == "DEL":
		return false, 0
	case err == nil && cmd == "DEL":
		if cnienv.IsOwnNetns(netns) {
			// Delegates must not delete the host's interfaces: DEL as for a vanished netns,
			// which skel's own-netns check then lets succeed.
			_ = os.Setenv("CNI_NETNS", "")
		}
		return true, 0
	case err == nil && netns != "":
		err = cnienv.CheckNetns(netns)
	}
	if err == nil {
		return true, 0
	}
	if te, ok := err.(*types.Error); ok {
		_ = te.Print()
	}
	return false, 1
}
