# syntax=docker/dockerfile:1
# The Harmony operator. Build from the repository root:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/runbeam/harmony-operator:0.1.0 .
# The runtime stage is exactly the folder scripts/runtime-bundle.sh builds (the data plane's config
# validator comes along as node_modules/@harmony/dataplane); test/runtime-bundle.test.ts checks it.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.base.json ./
COPY dataplane/package.json dataplane/
COPY operator/package.json operator/
RUN npm ci --no-audit --no-fund
# The operator compiles against the data plane's sources (its config schema and validator).
COPY dataplane/ dataplane/
COPY operator/ operator/
COPY scripts/runtime-bundle.sh scripts/
RUN bash scripts/runtime-bundle.sh operator /out

FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
COPY --from=build /out/ ./
ENV NODE_ENV=production
USER 65532:65532
# 8081: /healthz, /readyz, /metrics. 9443: the sidecar-injection webhook when --webhook-port 9443.
EXPOSE 8081 9443
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/main.js"]
