# Harmony for Kubernetes. `make run` and `make test` are the two entry points a fresh machine needs.
SHELL := /bin/bash

# Node 24 LTS for every recipe: the system's node when it is >= 24, otherwise the official build that
# scripts/ensure-node.sh fetches once into ${HARMONY_CACHE:-~/.cache/harmony}/node/. First on PATH, so
# npm, npx, node and the processes the tests spawn all run on it (npm ci builds native code for its ABI).
NODE_BIN := $(shell bash scripts/ensure-node.sh)
ifeq ($(NODE_BIN),)
$(error scripts/ensure-node.sh found no Node 24 and could not fetch one (see above))
endif
export PATH := $(NODE_BIN):$(PATH)
NODE_VERSION := $(shell $(NODE_BIN)/node -v)
CONFIG ?= examples/default/config.toml
# V8 flags for the data plane, as its image sets them (docker/dataplane.Dockerfile, NODE_OPTIONS).
DATAPLANE_NODE_FLAGS ?= --max-semi-space-size=2
# Per Node version: node_modules installed under another Node are installed again.
NPM_STAMP := node_modules/.harmony-installed-$(NODE_VERSION)
# The real-node files run apart, one at a time: there is one node per machine, and each file brings
# up its own (test/cluster/cluster.ts).
CLUSTER_TESTS = $(shell find test/cluster -name '*.test.ts' 2>/dev/null | sort)
TESTS = $(filter-out $(CLUSTER_TESTS),$(shell find dataplane/test operator/test test -name '*.test.ts' 2>/dev/null | sort))

.PHONY: install build run check test test-only test-cluster lint typecheck format-check schema crds controlplane argocd certmanager cluster peers lua images images-docker images-oci bundles bench clean conformance

install: $(NPM_STAMP)
$(NPM_STAMP): package.json package-lock.json dataplane/package.json operator/package.json
	npm ci --no-audit --no-fund
	@touch $@

build: install
	npm run build --workspaces

## Start the data plane (default: the embedded example config).
run: build
	node $(DATAPLANE_NODE_FLAGS) dataplane/dist/cli.js --config $(CONFIG)

## Validate a config: exit 0 when valid, 1 when not (every problem printed).
check: build
	node dataplane/dist/cli.js --check --config $(CONFIG)

lint: install
	npx eslint .
	npm run --silent lint:cycles

typecheck: install
	npx tsc -p dataplane/tsconfig.json --noEmit
	npx tsc -p operator/tsconfig.json --noEmit
	npx tsc -p test/tsconfig.json --noEmit

format-check: install
	npx prettier --check .

## Regenerate the committed config JSON Schema from its TypeBox source.
schema: install
	npm run gen:schema --workspace dataplane

## Regenerate crds/*.yaml from the operator's schema source.
crds: install
	npm run gen:crds --workspace operator

## Real kube-apiserver, kube-controller-manager, etcd and helm for the operator tests (cached
## outside the repository; the first build takes a few minutes).
controlplane:
	bash test/controlplane/build.sh

## A real Argo CD (v3.6.2, built from the Go module proxy), kustomize and redis-server for
## test/argocd.test.ts (cached outside the repository; the first build takes several minutes).
argocd:
	bash test/argocd/build.sh

## cert-manager's controller loops (v1.21.2, from the Go module proxy) and CRDs for
## test/network-certmanager.test.ts (cached outside the repository; the first build takes minutes).
## A failed build does not stop `make test`: that test then skips, printing the build's error.
certmanager:
	bash test/certmanager/build.sh || echo "certmanager: build failed; test/network-certmanager.test.ts will skip, saying why" >&2

## The real-node suite's binaries (test/cluster/build.sh): the control plane's plus kubelet,
## kube-scheduler, kube-proxy and CoreDNS (cached like it), a static pause binary, and Debian's
## containerd, runc, CNI plugins, iptables and conntrack (apt-get, when missing).
cluster:
	bash test/cluster/build.sh

## The Gateway API conformance suite (v1.7.0, GATEWAY-HTTP) against the operator on the real node:
## test/gateway-api/conformance.ts, holding the real-node lock; writes conformance/gateway-http-report.yaml.
## Part of `make test` (last; warm ~2 min here, 3/3 runs core 40/40 on 2026-12-05; cold adds the suite build,
## ~2 min on a quiet machine).
conformance: build
	bash test/cluster/build.sh >/dev/null
	node --import tsx test/gateway-api/conformance.ts --prepare
	flock -w 2400 /tmp/harmony-realnode.lock node --import tsx test/gateway-api/conformance.ts $(CONFORMANCE_ARGS)

## Healthcare peers (Orthanc, dcmtk, dicom3tools, sample DICOM files); installs what is missing.
peers:
	bash test/peers/peers.sh install

## Lua 5.4 and 5.1 (the Argo CD health check) and promtool (alert rules); installs what is missing.
lua:
	bash test/controlplane/lua.sh

## Everything CI runs: static checks, then every test over real sockets.
test: install build lint typecheck format-check controlplane argocd certmanager cluster peers lua test-only

# Each suite's failures also go, a line each, to a file that is printed last: the tail of the log names them.
FAILURES = --test-reporter=spec --test-reporter-destination=stdout \
	--test-reporter=./scripts/failures-reporter.mjs --test-reporter-destination=$$failed
test-only:
	@failed=$$(mktemp); \
	node --import tsx --test --test-concurrency=2 $(FAILURES) $(TESTS); a=$$?; \
	node --import tsx --test --test-concurrency=1 $(FAILURES).cluster $(CLUSTER_TESTS); b=$$?; \
	$(MAKE) --no-print-directory conformance; c=$$?; \
	echo; echo "== make test-only: main tests exit $$a, cluster tests exit $$b, conformance exit $$c"; \
	cat $$failed $$failed.cluster 2>/dev/null | sed 's/^/✖ /'; rm -f $$failed $$failed.cluster; \
	[ $$a = 0 ] && [ $$b = 0 ] && [ $$c = 0 ]

## Only the real-node suite (root): a single-node cluster on this machine, the images, the chart.
test-cluster: build cluster
	node --import tsx --test --test-concurrency=1 --test-reporter=spec $(CLUSTER_TESTS)

IMAGE_TAG ?= 0.1.0
BUNDLE_DIR ?= /tmp/harmony-bundles
# Where `make images` writes each image's SBOM (harmony-<name>.cdx.json).
IMAGE_OUT ?= /tmp/harmony-images
# The Dockerfiles' bases (build arguments): a mirror or a pinned digest goes here.
BUILD_BASE ?= node:24-bookworm-slim
NODE_BASE ?= gcr.io/distroless/nodejs24-debian12:nonroot
# File mtimes and SBOM timestamps in the images: the last commit's time, so a rebuild of one commit
# gives the same bytes (scripts/runtime-bundle.sh defaults to the same for `make bundles`).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 315532800)
IMAGE_ARGS = --build-arg BUILD_BASE=$(BUILD_BASE) --build-arg NODE_BASE=$(NODE_BASE) \
	--build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH)

## Images, each with its SBOM beside it in $(IMAGE_OUT). With Docker and BuildKit (docker buildx and
## a daemon): `docker build` of docker/*.Dockerfile. Without (IMAGE_BUILDER=oci, the default when
## `docker buildx` or the daemon is missing): scripts/images.sh writes OCI image archives
## $(IMAGE_OUT)/harmony-<name>-$(IMAGE_TAG).oci.tar from the same runtime folder on a base made from
## this Node 24 (`ctr -n k8s.io images import` or `docker load` them).
IMAGE_BUILDER ?= $(shell docker buildx version >/dev/null 2>&1 && docker info >/dev/null 2>&1 && echo docker || echo oci)
images: images-$(IMAGE_BUILDER)

images-oci: install
	bash scripts/images.sh $(IMAGE_OUT) $(IMAGE_TAG)

images-docker:
	mkdir -p $(IMAGE_OUT)
	for name in dataplane operator; do \
	  docker build $(IMAGE_ARGS) -f docker/$$name.Dockerfile -t ghcr.io/runbeam/harmony-$$name:$(IMAGE_TAG) . && \
	  docker build $(IMAGE_ARGS) -f docker/$$name.Dockerfile --target sbom --output type=local,dest=$(IMAGE_OUT) . \
	  || exit 1; \
	done

## The images' runtime folders without Docker (outside the repository on purpose), each with
## <folder>.cdx.json, its SBOM, beside it.
bundles: install
	rm -rf $(BUNDLE_DIR)
	bash scripts/runtime-bundle.sh dataplane $(BUNDLE_DIR)/dataplane
	bash scripts/runtime-bundle.sh operator $(BUNDLE_DIR)/operator

bench: build
	bash bench/http-passthrough/run.sh

clean:
	rm -rf node_modules dataplane/dist operator/dist
