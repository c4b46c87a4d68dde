# syntax=docker/dockerfile:1
# The Harmony operator. Build from the repository root (`make images` does this, and exports the SBOM):
#   docker build -f docker/operator.Dockerfile -t ghcr.io/runbeam/harmony-operator:0.1.0 .
# The runtime stage is exactly the folder scripts/runtime-bundle.sh builds (the data plane's config
# validator comes along as node_modules/@harmony/dataplane); test/runtime-bundle.test.ts checks it.
# Build arguments: as in dataplane.Dockerfile (BUILD_BASE, NODE_BASE, SOURCE_DATE_EPOCH).
ARG BUILD_BASE=node:24-bookworm-slim
ARG NODE_BASE=gcr.io/distroless/nodejs24-debian12:nonroot

FROM ${BUILD_BASE} AS build
ARG SOURCE_DATE_EPOCH=315532800
WORKDIR /src
COPY package.json package-lock.json tsconfig.base.json ./
COPY dataplane/package.json dataplane/
COPY operator/package.json operator/
RUN npm ci --no-audit --no-fund
# The operator compiles against the data plane's sources (its config schema and validator).
COPY dataplane/ dataplane/
COPY operator/ operator/
COPY scripts/runtime-bundle.sh scripts/sbom.mjs scripts/
RUN bash scripts/runtime-bundle.sh operator /out/app

# The SBOM alone, to be exported beside the image (--target sbom --output type=local,dest=<dir>).
FROM scratch AS sbom
COPY --from=build /out/app.cdx.json /harmony-operator.cdx.json

FROM ${NODE_BASE} AS runtime
WORKDIR /app
COPY --from=build /out/app/ ./
COPY --from=build /out/app.cdx.json /usr/share/harmony/sbom.cdx.json
ENV NODE_ENV=production
# Heap sizes (bench/README.md, operator-scale):
# - 2 MiB semi-spaces, as the data plane's image: Node 24's larger young generation lets a render's
#   garbage pile up before a scavenge (new space 50 MiB at its largest without, 2 MiB with).
# - Old space: 60 % of the container's memory limit (Node reads the cgroup limit; outside a container,
#   of the machine's memory). V8 grows the old space towards its limit, and grows it faster the larger
#   that limit (up to 4× the live set on a large machine), so an unbounded heap peaked at 271-371 MiB
#   RSS at 1,000 pipelines with ~96 MiB live. Under the chart's default 1280Mi limit: 768 MiB of old
#   space, room for 10,000 pipelines (old generation 585 MiB at most, unbounded) and 512 MiB for the
#   rest of the process (240-320 MiB at 10,000). test/operator-heap.test.ts keeps this, the chart
#   and bench/operator-scale in step.
# A pod's own NODE_OPTIONS replaces all of this.
ENV NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size-percentage=60"
USER 65532:65532
# 8081: /healthz, /readyz, /metrics. 9443: the sidecar-injection webhook when --webhook-port 9443.
EXPOSE 8081 9443
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/main.js"]
