# Steer — build, test and demo. `make demo` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

export GOTOOLCHAIN := local
export STEER_CACHE ?= $(HOME)/.cache/steer

GO ?= go
BIN := bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(STEER_CACHE)/tools/staticcheck-$(STATICCHECK_VERSION)
# helm renders and lints the chart in manifests' tests; its release is in manifests/tools.txt.
HELM_VERSION := $(shell awk '$$1 == "helm" { print $$2 }' manifests/tools.txt)
HELM := $(STEER_CACHE)/tools/helm-$(HELM_VERSION)
APT_PACKAGES := clang-14 llvm-14 llvm bpftool libbpf-dev iproute2 iperf3 iputils-ping ethtool tcpdump
# The real node's runtime and kubelet's firewall rules (internal/testbed/realnode).
APT_PACKAGES += runc iptables
# Generated files that are committed: bpf2go output and the trimmed kernel header.
GENERATED := bpf/include/vmlinux.h pkg/datapath/steer_bpfel.go pkg/datapath/steer_bpfel.o pkg/datapath/steer_next_bpfel.go pkg/datapath/steer_next_bpfel.o pkg/datapath/svc_bpfel.go pkg/datapath/svc_bpfel.o
TEST_TIMEOUT ?= 20m

.PHONY: deps apt kube-binaries node-binaries cni-plugins multus tools generate check-generated build image manifests lint unit test test-go soak demo demo-emulation demo-up demo-down bench clean

## deps: install everything the build, tests and demo need (idempotent, cached under $(STEER_CACHE))
deps: apt kube-binaries node-binaries cni-plugins multus tools
	@$(GO) mod download

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [[ -n "$$missing" ]]; then \
		echo "[deps] apt-get install $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "[deps] apt packages present"; fi

kube-binaries:
	@hack/install-kube.sh

# kubelet, kube-controller-manager, kube-scheduler, containerd, crictl: the real node
node-binaries:
	@hack/install-node.sh

cni-plugins:
	@hack/install-cni-plugins.sh

# Multus, the peer of benchmarks/cni
multus:
	@hack/install-multus.sh

tools: $(STATICCHECK) $(HELM)
$(STATICCHECK):
	@echo "[deps] installing staticcheck $(STATICCHECK_VERSION)"
	@mkdir -p $(dir $@) && tmp=$$(mktemp -d) && \
		GOBIN=$$tmp CGO_ENABLED=0 $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) && \
		mv $$tmp/staticcheck $@ && rm -rf $$tmp
$(HELM):
	@echo "[deps] building helm $(HELM_VERSION) (first time: a few minutes)"
	@mkdir -p $(dir $@) && tmp=$$(mktemp -d) && major=$$(cut -d. -f1 <<<"$(HELM_VERSION)") && \
		GOBIN=$$tmp CGO_ENABLED=0 $(GO) install -trimpath \
			-ldflags="-s -w -X helm.sh/helm/$$major/internal/version.version=$(HELM_VERSION)" \
			helm.sh/helm/$$major/cmd/helm@$(HELM_VERSION) && \
		mv $$tmp/helm $@ && rm -rf $$tmp

## generate: regenerate the trimmed vmlinux.h (bpftool) and the bpf2go output
generate:
	$(GO) run ./bpftool-gen -out bpf/include/vmlinux.h
	$(GO) generate ./pkg/datapath

## check-generated: regenerate into the tree and fail on any difference from what is committed
check-generated: generate
	@if ! git diff --exit-code --stat -- $(GENERATED); then \
		echo "generated files are stale: run 'make generate' and commit the result" >&2; exit 1; fi
	@echo "generated files are up to date"

## build: the plugin, the daemon and the CLI
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

## image: the multi-arch image (linux/amd64, linux/arm64) as an OCI image layout tarball, no Docker
## needed: bin/steer-image.tar (ctr -n k8s.io images import --all-platforms bin/steer-image.tar)
image:
	$(GO) run ./hack/mkimage -out $(BIN)/steer-image.tar

## manifests: render manifests/steer.yaml, the kustomize manifests, from the Helm chart's defaults
manifests: $(HELM)
	$(GO) test -count=1 -run '^TestRenderedManifestsAreFresh$$' ./manifests -args -update

## lint: gofmt, go vet, staticcheck
lint: $(STATICCHECK)
	@bad=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); \
	if [[ -n "$$bad" ]]; then echo "gofmt would change: $$bad" >&2; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

## unit: the quick loop, no set-up: every test that needs neither root nor the local apiserver
## (those skip under -short; see nstest.RequireRoot and kubetest.RequireCluster)
unit:
	$(GO) test -short ./...

## test: everything CI checks — generated files, lint, and all tests (needs root)
# The image is what the real node's tests deploy (internal/testbed/realnode).
test: deps check-generated lint image test-go

# internal/testbed/soak runs alone, after the rest: its latency figures and its plugin kills, aimed
# into the middle of an ADD, want a quiet machine.
test-go:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v /internal/testbed/soak$$)
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./internal/testbed/soak

SOAK_CYCLES ?= 5000
SOAK_WORKERS ?= 4
FUZZTIME ?= 60s
SOAK_REPORT ?= benchmarks/results/soak.md
## soak: churn, faults and hostile input at full size (SOAK_CYCLES per mode), then every fuzzer for FUZZTIME
soak: deps
	$(GO) test -count=1 -timeout 150m -v -run '^TestSoak$$' ./internal/testbed/soak -args \
		-soak.cycles=$(SOAK_CYCLES) -soak.workers=$(SOAK_WORKERS) -soak.fault-every=10 -soak.report=$(abspath $(SOAK_REPORT))
	$(GO) test -count=1 -run '^(TestHostileInput|TestBadInput)$$' ./cmd/steer
	$(GO) test -count=1 -run '^(TestPeerCred|TestServeHostileArguments)$$' ./pkg/daemon
	$(MAKE) image
	$(GO) test -count=1 -timeout 30m -run '^TestRealNode$$' ./internal/testbed/realnode -args -realnode.long
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

## demo: Steer at work on a real node: a local kube-apiserver + etcd, and a node whose kubelet and
## containerd run Steer's DaemonSet (the image of `make image`, installed with Helm) and the pods
demo: deps build image
	$(GO) run ./cmd/steer-demo -real-node -image $(BIN)/steer-image.tar -steerctl $(BIN)/steerctl

## demo-emulation: the stories on the emulation (two nodes and their pods as network namespaces, a
## simulated kubelet), with seed 001's two secondary networks on one pod
demo-emulation: deps build
	$(GO) run ./cmd/steer-demo -plugin $(BIN)/steer -steerd $(BIN)/steerd -steerctl $(BIN)/steerctl

DEMO_STATE := $(STEER_CACHE)/demo
## demo-up: the demo, kept running in the background for exploration; demo-down ends it
demo-up: deps build image
	@mkdir -p $(DEMO_STATE)
	@if [[ -f $(DEMO_STATE)/pid ]] && kill -0 $$(cat $(DEMO_STATE)/pid) 2>/dev/null; then echo "demo already up (make demo-down)"; exit 1; fi
	@nohup $(BIN)/steer-demo -hold -real-node -image $(abspath $(BIN))/steer-image.tar -steerctl $(abspath $(BIN))/steerctl > $(DEMO_STATE)/log 2>&1 & echo $$! > $(DEMO_STATE)/pid
	@echo "starting the demo (log: $(DEMO_STATE)/log) ..."
	@for i in $$(seq 300); do grep -q "^   ready" $(DEMO_STATE)/log 2>/dev/null && break; kill -0 $$(cat $(DEMO_STATE)/pid) 2>/dev/null || { cat $(DEMO_STATE)/log; exit 1; }; sleep 1; done
	@sed -n '/The demo stays up/,$$p' $(DEMO_STATE)/log

demo-down:
	@if [[ -f $(DEMO_STATE)/pid ]]; then pid=$$(cat $(DEMO_STATE)/pid); kill -TERM $$pid 2>/dev/null; \
		while kill -0 $$pid 2>/dev/null; do sleep 0.5; done; rm -f $(DEMO_STATE)/pid; tail -2 $(DEMO_STATE)/log; \
	else echo "no demo running"; fi

## bench: benchmarks (not tests); see benchmarks/
bench: deps build image
	$(GO) run ./benchmarks $(BENCH_FLAGS)

clean:
	rm -rf $(BIN)
