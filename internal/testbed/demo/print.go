package demo

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

type printer struct{ w io.Writer }

// maxLines keeps long command output (a map dump) to a screenful.
const maxLines = 30

func (p printer) heading(s string) { fmt.Fprintf(p.w, "\n== %s\n", s) }
func (p printer) sub(s string)     { fmt.Fprintf(p.w, "\n-- %s\n", s) }

func (p printer) say(f string, a ...any) { fmt.Fprintf(p.w, "   "+f+"\n", a...) }

// step announces work that takes a while; done closes the line.
func (p printer) step(s string) { fmt.Fprintf(p.w, "   %s ... ", s) }
func (p printer) done(d time.Duration) {
	if d > time.Second {
		fmt.Fprintf(p.w, "done (%s)\n", d.Round(100*time.Millisecond))
		return
	}
	fmt.Fprintln(p.w, "done")
}

func (p printer) verdict(v Verdict) {
	switch {
	case v.Broken && v.Fixed:
		fmt.Fprintf(p.w, "\n   VERDICT %s: broken without Steer, fixed with it\n", v.Story)
	case v.Fixed:
		fmt.Fprintf(p.w, "\n   VERDICT %s: works with Steer (and also without it here)\n", v.Story)
	default:
		fmt.Fprintf(p.w, "\n   VERDICT %s: NOT FIXED\n", v.Story)
	}
}

// cmd runs a command and shows it with its output, as an operator would type it.
func (p printer) cmd(ctx context.Context, name string, args ...string) {
	fmt.Fprintf(p.w, "\n   $ %s %s\n", shortName(name), strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	for i, line := range lines {
		if i == maxLines {
			fmt.Fprintf(p.w, "   | ... (%d more lines)\n", len(lines)-i)
			break
		}
		fmt.Fprintf(p.w, "   | %s\n", line)
	}
	if err != nil {
		fmt.Fprintf(p.w, "   ! %v\n", err)
	}
}

func shortName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

func mark(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}
