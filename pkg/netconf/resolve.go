package netconf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxConfFileSize bounds what we read from a configuration directory: a CNI
// config is a few KiB, and a stray huge file must not stall every pod ADD.
const maxConfFileSize = 1 << 20

// NetworkConfig returns the CNI configuration of a NetworkAttachmentDefinition
// as the NPWG specification (section 3.4) defines it.
//
// When nadConfig (the NAD's spec.config) is not blank it must be a CNI
// configuration (see Inspect); if it has no "name", or an empty or null one,
// the NAD name is set in place and every other byte is returned unchanged. A
// config that names itself keeps its own name, as in Multus.
//
// When nadConfig is blank, confDir is searched: first the .conflist files,
// then the .conf and .json files, each set in file-name order, for one whose
// "name" equals nadName. Files that cannot be read or parsed are skipped (one
// broken file must not break every network; Multus fails instead) and listed
// in the error if nothing matches. A file that matches but is not a valid
// configuration is an error.
//
// Errors: *types.Error (code 6 or 7) for a broken configuration; an error
// wrapping ErrNotFound when no file matches.
func NetworkConfig(nadName, nadConfig string, confDir string) ([]byte, error) {
	if nadName == "" {
		return nil, invalidError("NetworkAttachmentDefinition name is empty")
	}
	if strings.TrimSpace(nadConfig) == "" {
		return findByName(confDir, nadName)
	}
	conf := []byte(nadConfig)
	if _, err := Inspect(conf); err != nil {
		return nil, prefixError(fmt.Sprintf("NetworkAttachmentDefinition %q", nadName), err)
	}
	out, err := injectName(conf, nadName)
	if err != nil {
		return nil, prefixError(fmt.Sprintf("NetworkAttachmentDefinition %q", nadName), err)
	}
	return out, nil
}

// ClusterNetworkConfig resolves a clusterNetwork or defaultNetworks entry that
// lives on disk, the way Multus does once the NetworkAttachmentDefinition
// lookup (done elsewhere, against the apiserver) has found nothing:
//
//   - a reference without '/' is a network name, searched in confDir as
//     NetworkConfig does;
//   - a path to a directory selects its first .conf, .json or .conflist file
//     in file-name order;
//   - any other path is loaded as a configuration file; a .conflist file gets
//     the .conf plugin files of the directory named after the list, beside
//     it, appended (libcni's subdirectory loading, as Multus loads it).
//
// Errors are as for NetworkConfig; a missing path wraps ErrNotFound too.
func ClusterNetworkConfig(ref, confDir string) ([]byte, error) {
	if ref == "" {
		return nil, invalidError("clusterNetwork reference is empty")
	}
	if !strings.Contains(ref, "/") {
		return findByName(confDir, ref)
	}
	fi, err := os.Stat(ref)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", ref, err)
	}
	path := ref
	if fi.IsDir() {
		files, err := confFiles(ref, ".conf", ".json", ".conflist")
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: no .conf, .json or .conflist file in %s", ErrNotFound, ref)
		}
		path = files[0]
	}
	data, err := readConfFile(path)
	if err != nil {
		return nil, err
	}
	if _, err := Inspect(data); err != nil {
		return nil, prefixError(path, err)
	}
	if !fi.IsDir() && filepath.Ext(path) == ".conflist" {
		if data, err = withSubdirPlugins(data, filepath.Dir(path)); err != nil {
			return nil, prefixError(path, err)
		}
	}
	return data, nil
}

// findByName implements the confDir search of NetworkConfig.
func findByName(confDir, name string) ([]byte, error) {
	lists, err := confFiles(confDir, ".conflist")
	if err != nil {
		return nil, err
	}
	confs, err := confFiles(confDir, ".conf", ".json")
	if err != nil {
		return nil, err
	}
	var skipped []string
	for _, path := range append(lists, confs...) {
		data, err := readConfFile(path)
		if err == nil {
			var got string
			got, err = confName(data)
			if err == nil && got == name {
				if _, err := Inspect(data); err != nil {
					return nil, prefixError(path, err)
				}
				return data, nil
			}
		}
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", filepath.Base(path), err))
		}
	}
	note := ""
	if len(skipped) > 0 {
		note = "; skipped " + strings.Join(skipped, ", ")
	}
	return nil, fmt.Errorf("%w: no network named %q in %s%s", ErrNotFound, name, confDir, note)
}

// confFiles lists the regular files (or links to them) in dir with one of the
// extensions, in file-name order. A missing dir is no error, as in libcni.
func confFiles(dir string, exts ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing CNI config dir: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		ext := filepath.Ext(e.Name())
		for _, want := range exts {
			if ext == want {
				out = append(out, filepath.Join(dir, e.Name()))
			}
		}
	}
	return out, nil
}

func readConfFile(path string) ([]byte, error) {
	f, err := OpenRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxConfFileSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxConfFileSize)
	}
	return data, nil
}

// confName returns the "name" of a configuration ("" when absent).
func confName(conf []byte) (string, error) {
	ms, err := objectMembers(conf)
	if err != nil {
		return "", err
	}
	sp, ok := lastMember(ms, "name")
	if !ok {
		return "", nil
	}
	var name *string
	if err := json.Unmarshal(conf[sp.start:sp.end], &name); err != nil {
		return "", errors.New(`"name" is not a string`)
	}
	if name == nil {
		return "", nil
	}
	return *name, nil
}

// injectName sets "name" when it is missing, empty or null, editing only that
// member.
func injectName(conf []byte, name string) ([]byte, error) {
	got, err := confName(conf)
	if err != nil {
		return nil, decodeError("network config: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if got != "" {
		return conf, nil
	}
	q, err := json.Marshal(name)
	if err != nil {
		return nil, invalidError("network name %q: %v", name, err)
	}
	out, err := setMember(conf, "name", q)
	if err != nil {
		return nil, decodeError("network config: %v", err)
	}
	return out, nil
}
