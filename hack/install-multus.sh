#!/usr/bin/env bash
# Builds Multus' thin plugin, cached by version: the peer benchmarks/cni measures steer against, and
# the Multus that steer replaces on a node in the migration tests.
# First build ~3 min (module downloads and compile), ~6 s with a warm Go cache, 0 once cached.
set -euo pipefail

MULTUS_VERSION=${MULTUS_VERSION:-v4.3.0}
CACHE=${STEER_CACHE:-$HOME/.cache/steer}
dir=$CACHE/multus/$MULTUS_VERSION
module=gopkg.in/k8snetworkplumbingwg/multus-cni.v4

if [[ -x $dir/multus ]]; then
  echo "[deps] Multus $MULTUS_VERSION cached in $dir" >&2
  exit 0
fi
echo "[deps] building Multus $MULTUS_VERSION (first time: ~3 min)" >&2
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A module of its own rather than `go install $module/cmd/multus@version`, which also asks the
# proxy for the module's version list, and the proxy refuses that list for this module.
cd "$tmp"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
go mod init steer.local/multus-build >/dev/null 2>&1
go get "$module@$MULTUS_VERSION"
go build -trimpath -o multus "$module/cmd/multus"
mv multus "$dir/multus"
