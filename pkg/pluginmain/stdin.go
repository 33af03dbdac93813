package pluginmain

import (
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/api"
)

// maxStdin bounds the configuration a runtime may pass: steerd takes no larger request, and
// decoding a huge one cost many times its size in memory (10 MB took 175 MB).
const maxStdin = api.MaxRequestSize

// boundStdin reads the configuration before skel does, refusing one over maxStdin (DEL
// succeeds: ADD refuses the same configuration, so nothing was attached with it), and hands
// skel what it read through a pipe. It reports whether the plugin should go on.
func boundStdin() (proceed bool, exitCode int) {
	cmd := os.Getenv("CNI_COMMAND")
	if cmd == "" {
		return true, 0 // skel prints its usage; stdin may be a terminal
	}
	data, err := io.ReadAll(io.LimitReader(os.Stdin, maxStdin+1))
	if err == nil && len(data) > maxStdin {
		if cmd == "DEL" {
			return false, 0
		}
		err = types.NewError(types.ErrDecodingFailure, fmt.Sprintf("steer config is larger than %d bytes", maxStdin), "")
	}
	if err != nil {
		te, ok := err.(*types.Error)
		if !ok {
			te = types.NewError(types.ErrIOFailure, fmt.Sprintf("read stdin: %v", err), "")
		}
		_ = te.Print()
		return false, 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		_ = types.NewError(types.ErrIOFailure, fmt.Sprintf("stdin pipe: %v", err), "").Print()
		return false, 1
	}
	go func() {
		_, _ = w.Write(data)
		_ = w.Close()
	}()
	os.Stdin = r
	return true, 0
}
