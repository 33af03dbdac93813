#!/usr/bin/env bash
# Builds Multus, cached by version: the thin plugin (multus) and the thick plugin's daemon and
# shim (multus-daemon, multus-shim). They are the peers benchmarks/cni measures steer against,
# and the thin plugin is the Multus that steer replaces on a node in the migration tests.
# First build ~3 min (module downloads and compile), ~10 s with a warm Go cache, 0 once cached.
set -euo pipefail

MULTUS_VERSION=${MULTUS_VERSION:-v4.3.0}
CACHE=${STEER_CACHE:-$HOME/.cache/steer}
dir=$CACHE/multus/$MULTUS_VERSION
module=gopkg.in/k8snetworkplumbingwg/multus-cni.v4
binaries=(multus multus-daemon multus-shim)

missing=()
for b in "${binaries[@]}"; do
  [[ -x $dir/$b ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "[deps] Multus $MULTUS_VERSION cached in $dir" >&2
  exit 0
fi
echo "[deps] building Multus $MULTUS_VERSION: ${missing[*]} (first time: ~3 min)" >&2
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A module of its own rather than `go install $module/cmd/multus@version`, which also asks the
# proxy for the module's version list, and the proxy refuses that list for this module.
cd "$tmp"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
go mod init steer.local/multus-build >/dev/null 2>&1
go get "$module@$MULTUS_VERSION"
for b in "${missing[@]}"; do
  go build -trimpath -o "$b" "$module/cmd/$b"
  mv "$b" "$dir/$b"
done
