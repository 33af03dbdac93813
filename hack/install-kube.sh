#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy and caches them by version,
# so a fresh clone reuses them. Upstream publishes no Go-installable binaries for these: we build
# them through a throwaway wrapper module that points every staging module at its release.
set -euo pipefail

# Default releases: internal/testbed/localcluster/versions.txt, which the Go side embeds.
versions=$(dirname "$0")/../internal/testbed/localcluster/versions.txt
KUBE_VERSION=${KUBE_VERSION:-$(awk '$1 == "kube" { print $2 }' "$versions")}
ETCD_VERSION=${ETCD_VERSION:-$(awk '$1 == "etcd" { print $2 }' "$versions")}
CACHE=${STEER_CACHE:-$HOME/.cache/steer}
kube_dir=$CACHE/kube/$KUBE_VERSION
etcd_dir=$CACHE/etcd/$ETCD_VERSION

export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { printf '[deps] %s\n' "$*" >&2; }

build_kube() {
  if [[ -x $kube_dir/kube-apiserver && -x $kube_dir/kubectl ]]; then
    log "kube-apiserver and kubectl $KUBE_VERSION cached in $kube_dir"
    return
  fi
  log "building kube-apiserver and kubectl $KUBE_VERSION (first time: ~10 min on 2 cores)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  cd "$work"
  go mod init steer.local/kubebuild >/dev/null 2>&1
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  local staging_version=v0${KUBE_VERSION#v1}
  {
    grep -oE '^\s*k8s\.io/[A-Za-z0-9._-]+ => \./staging' "$gomod" | awk '{print $1}' | sort -u |
      while read -r m; do echo "replace $m => $m $staging_version"; done
  } >>go.mod
  go get "k8s.io/kubernetes/cmd/kube-apiserver@$KUBE_VERSION" "k8s.io/kubernetes/cmd/kubectl@$KUBE_VERSION"
  mkdir -p "$kube_dir.tmp"
  go build -trimpath -ldflags=-s -o "$kube_dir.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags=-s -o "$kube_dir.tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
  rm -rf "$kube_dir" && mv "$kube_dir.tmp" "$kube_dir"
  log "kube binaries ready in $kube_dir"
}

build_etcd() {
  if [[ -x $etcd_dir/etcd ]]; then
    log "etcd $ETCD_VERSION cached in $etcd_dir"
    return
  fi
  log "building etcd $ETCD_VERSION (first time: ~2 min)"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  cd "$work"
  go mod init steer.local/etcdbuild >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  mkdir -p "$etcd_dir.tmp"
  go build -trimpath -ldflags=-s -o "$etcd_dir.tmp/etcd" go.etcd.io/etcd/server/v3
  rm -rf "$etcd_dir" && mv "$etcd_dir.tmp" "$etcd_dir"
  log "etcd ready in $etcd_dir"
}

build_etcd
build_kube
