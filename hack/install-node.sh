#!/usr/bin/env bash
# Builds what a real node runs, cached by version: kubelet, kube-controller-manager and
# kube-scheduler (like hack/install-kube.sh builds kube-apiserver: a throwaway wrapper module that
# points every staging module at its release), containerd with its runc shim and ctr (static,
# without the snapshotters that need C), and crictl. runc and iptables come from Debian (make apt).
set -euo pipefail

versions=$(dirname "$0")/../internal/testbed/localcluster/versions.txt
v() { awk -v n="$1" '$1 == n { print $2 }' "$versions"; }
KUBE_VERSION=${KUBE_VERSION:-$(v kube)}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-$(v containerd)}
CRI_TOOLS_VERSION=${CRI_TOOLS_VERSION:-$(v cri-tools)}
CACHE=${STEER_CACHE:-$HOME/.cache/steer}
kube_dir=$CACHE/kube-node/$KUBE_VERSION
containerd_dir=$CACHE/containerd/$CONTAINERD_VERSION
crictl_dir=$CACHE/cri-tools/$CRI_TOOLS_VERSION

# Each build runs in a subshell of its own, in a throwaway directory removed when it ends.
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { printf '[deps] %s\n' "$*" >&2; }

build_kube_node() (
  if [[ -x $kube_dir/kubelet && -x $kube_dir/kube-controller-manager && -x $kube_dir/kube-scheduler ]]; then
    log "kubelet, kube-controller-manager and kube-scheduler $KUBE_VERSION cached in $kube_dir"
    return
  fi
  log "building kubelet, kube-controller-manager and kube-scheduler $KUBE_VERSION (first time: several minutes)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  go mod init steer.local/kubenodebuild >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging_version=v0${KUBE_VERSION#v1}
  grep -oE '^\s*k8s\.io/[A-Za-z0-9._-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u |
    while read -r m; do echo "replace $m => $m $staging_version"; done >>go.mod
  local cmds=(kubelet kube-controller-manager kube-scheduler)
  local c
  for c in "${cmds[@]}"; do go get "k8s.io/kubernetes/cmd/$c@$KUBE_VERSION"; done
  mkdir -p "$kube_dir.tmp"
  for c in "${cmds[@]}"; do
    go build -trimpath -ldflags=-s -o "$kube_dir.tmp/$c" "k8s.io/kubernetes/cmd/$c"
  done
  rm -rf "$kube_dir" && mv "$kube_dir.tmp" "$kube_dir"
  log "kubelet, kube-controller-manager and kube-scheduler ready in $kube_dir"
)

build_containerd() (
  if [[ -x $containerd_dir/containerd && -x $containerd_dir/containerd-shim-runc-v2 && -x $containerd_dir/ctr ]]; then
    log "containerd $CONTAINERD_VERSION cached in $containerd_dir"
    return
  fi
  log "building containerd $CONTAINERD_VERSION (first time: a few minutes)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  go mod init steer.local/containerdbuild >/dev/null 2>&1
  local cmds=(containerd containerd-shim-runc-v2 ctr)
  local c
  for c in "${cmds[@]}"; do go get "github.com/containerd/containerd/v2/cmd/$c@$CONTAINERD_VERSION"; done
  mkdir -p "$containerd_dir.tmp"
  local tags="no_btrfs no_devmapper no_zfs osusergo netgo static_build"
  for c in "${cmds[@]}"; do
    go build -trimpath -tags "$tags" -ldflags=-s -o "$containerd_dir.tmp/$c" "github.com/containerd/containerd/v2/cmd/$c"
  done
  rm -rf "$containerd_dir" && mv "$containerd_dir.tmp" "$containerd_dir"
  log "containerd ready in $containerd_dir"
)

build_crictl() (
  if [[ -x $crictl_dir/crictl ]]; then
    log "crictl $CRI_TOOLS_VERSION cached in $crictl_dir"
    return
  fi
  log "building crictl $CRI_TOOLS_VERSION"
  rm -rf "$crictl_dir.tmp" && mkdir -p "$crictl_dir.tmp"
  GOBIN=$crictl_dir.tmp go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
  rm -rf "$crictl_dir" && mv "$crictl_dir.tmp" "$crictl_dir"
)

build_containerd
build_crictl
build_kube_node
