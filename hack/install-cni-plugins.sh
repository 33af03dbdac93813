#!/usr/bin/env bash
# Installs the reference CNI plugins Steer's tests and demo delegate to, cached by version.
set -euo pipefail

CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.9.1}
CACHE=${STEER_CACHE:-$HOME/.cache/steer}
dir=$CACHE/cni-plugins/$CNI_PLUGINS_VERSION
plugins=(main/macvlan main/bridge main/host-device main/vlan main/ptp ipam/host-local ipam/static meta/tuning)

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
