# syntax=docker/dockerfile:1
# The Harmony data plane. Build from the repository root:
#   docker build -f docker/dataplane.Dockerfile -t ghcr.io/runbeam/harmony-dataplane:0.1.0 .
# The runtime stage is exactly the folder scripts/runtime-bundle.sh builds; test/runtime-bundle.test.ts
# builds it the same way and runs the data plane from it with plain node, no Docker needed.

FROM node:20-bookworm-slim AS build
WORKDIR /src
# Manifests first: the dependency layer is rebuilt only when they change.
COPY package.json package-lock.json tsconfig.base.json ./
COPY dataplane/package.json dataplane/
COPY operator/package.json operator/
RUN npm ci --no-audit --no-fund
COPY dataplane/ dataplane/
COPY scripts/runtime-bundle.sh scripts/
RUN bash scripts/runtime-bundle.sh dataplane /out

# Distroless: node and CA certificates, no shell or package manager at run time.
FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
COPY --from=build /out/ ./
ENV NODE_ENV=production
# nonroot (65532), the UID the operator's pod securityContext runs the data plane as.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli.js"]
# Where the operator mounts the rendered ConfigMap; `docker run ... --config /path` overrides it.
CMD ["--config", "/etc/harmony/config/config.toml"]
