#!/usr/bin/env bash
# Installs the reference CNI plugins Steer's tests and demo delegate to, cached by version.
# Release and plugins come from internal/testbed/cniplugins/plugins.txt, which the Go side embeds.
set -euo pipefail

spec=$(dirname "$0")/../internal/testbed/cniplugins/plugins.txt
CNI_PLUGINS_VERSION=$(awk '$1 == "version" { print $2 }' "$spec")
mapfile -t plugins < <(awk '$1 == "plugin" { print $2 }' "$spec")
CACHE=${STEER_CACHE:-$HOME/.cache/steer}
dir=$CACHE/cni-plugins/$CNI_PLUGINS_VERSION

missing=()
for p in "${plugins[@]}"; do
  [[ -x $dir/$(basename "$p") ]] || missing+=("github.com/containernetworking/plugins/plugins/$p@$CNI_PLUGINS_VERSION")
done
if ((${#missing[@]} == 0)); then
  echo "[deps] CNI plugins $CNI_PLUGINS_VERSION cached in $dir" >&2
  exit 0
fi
echo "[deps] installing CNI plugins $CNI_PLUGINS_VERSION (first time: ~30 s)" >&2
mkdir -p "$dir"
GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN=$dir go install "${missing[@]}"
