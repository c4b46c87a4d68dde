# syntax=docker/dockerfile:1
# The Harmony data plane. Build from the repository root (`make images` does this, and exports the SBOM):
#   docker build -f docker/dataplane.Dockerfile -t ghcr.io/runbeam/harmony-dataplane:0.1.0 .
# The runtime stage is exactly the folder scripts/runtime-bundle.sh builds; test/runtime-bundle.test.ts
# builds it the same way and runs the data plane from it with plain node, no Docker needed.
#
# Build arguments (bases are arguments so a site can use its own mirror or a pinned digest):
#   BUILD_BASE         an image with Node 24, npm and bash: installs, compiles and bundles
#   NODE_BASE          the runtime: Node 24 at /nodejs/bin/node (the distroless layout), no shell
#   SOURCE_DATE_EPOCH  every file's mtime and the SBOM's timestamp (make passes the last commit's time)
ARG BUILD_BASE=node:24-bookworm-slim
ARG NODE_BASE=gcr.io/distroless/nodejs24-debian12:nonroot

FROM ${BUILD_BASE} AS build
ARG SOURCE_DATE_EPOCH=315532800
WORKDIR /src
# Manifests first: the dependency layer is rebuilt only when they change.
COPY package.json package-lock.json tsconfig.base.json ./
COPY dataplane/package.json dataplane/
COPY operator/package.json operator/
RUN npm ci --no-audit --no-fund
COPY dataplane/ dataplane/
COPY scripts/runtime-bundle.sh scripts/sbom.mjs scripts/
# /out/app is the runtime folder, /out/app.cdx.json its CycloneDX SBOM (npm sbom).
RUN bash scripts/runtime-bundle.sh dataplane /out/app

# The SBOM alone, to be exported beside the image:
#   docker build --target sbom --output type=local,dest=<dir> -f docker/dataplane.Dockerfile .
FROM scratch AS sbom
COPY --from=build /out/app.cdx.json /harmony-dataplane.cdx.json

# Distroless: node and CA certificates, no shell or package manager at run time. Nothing here writes
# to the filesystem, so it runs with a read-only root (the chart sets readOnlyRootFilesystem).
FROM ${NODE_BASE} AS runtime
WORKDIR /app
COPY --from=build /out/app/ ./
COPY --from=build /out/app.cdx.json /usr/share/harmony/sbom.cdx.json
ENV NODE_ENV=production
# Node 24 gives the young generation up to 64 MiB (Node 20: 32). Garbage socket Buffers then wait
# longer for a scavenge, and streaming peaks 50-100 MiB higher. 2 MiB semi-spaces bring back Node 20's
# footprint for about 15x the scavenges at 1 KiB. The numbers and the decision are in bench/README.md,
# "Node 24 memory, decided". It is set here, the one place every launch of the image goes through;
# a pod's own NODE_OPTIONS replaces it (e.g. --max-semi-space-size=16 to trade memory for CPU).
ENV NODE_OPTIONS=--max-semi-space-size=2
# nonroot (65532), the UID the operator's pod securityContext runs the data plane as.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli.js"]
# Where the operator mounts the rendered ConfigMap; `docker run ... --config /path` overrides it.
CMD ["--config", "/etc/harmony/config/config.toml"]
