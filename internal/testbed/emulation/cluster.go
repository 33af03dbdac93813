package emulation

import (
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/steernet/steer/examples"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/k8s"
)

// ApplyExamples creates every NetworkAttachmentDefinition of examples/ in namespace.
func ApplyExamples(ctx context.Context, nads *k8s.NADClient, namespace string) error {
	files, err := fs.Glob(examples.FS, "*.yaml")
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := examples.FS.ReadFile(f)
		if err != nil {
			return err
		}
		var nad k8s.NetworkAttachmentDefinition
		if err := yaml.Unmarshal(b, &nad); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if nad.Kind != k8s.NADKind {
			continue
		}
		nad.Namespace = namespace
		if _, err := nads.Create(ctx, &nad); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

// BuildPlugin builds the steer plugin and steer-shim (thick mode's) into dir and returns the
// plugin's path.
func BuildPlugin(ctx context.Context, dir string) (string, error) {
	if _, err := BuildCommand(ctx, dir, api.ShimBinary); err != nil {
		return "", err
	}
	return BuildCommand(ctx, dir, api.PluginBinary)
}

// BuildCommand builds one of Steer's commands (steer, steerd, steerctl) into dir.
func BuildCommand(ctx context.Context, dir, command string) (string, error) {
	return buildCommand(ctx, filepath.Join(dir, command), command)
}

// BuildNextRelease builds a command as the next release of Steer, whose BPF object has the
// next layout (a changed flow value and program: go build -tags steer_next), into dir as
// <command>-next: what a rollout upgrades running pods to.
func BuildNextRelease(ctx context.Context, dir, command string) (string, error) {
	return buildCommand(ctx, filepath.Join(dir, command+"-next"), command, "-tags", "steer_next")
}

func buildCommand(ctx context.Context, out, command string, flags ...string) (string, error) {
	args := append(append([]string{"build", "-o", out}, flags...), "github.com/steernet/steer/cmd/"+command)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", command, err, strings.TrimSpace(string(b)))
	}
	return out, nil
}
