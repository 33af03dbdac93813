// Command steerd is Steer's node daemon.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "steerd: not yet available in this build")
	os.Exit(1)
}
