#!/usr/bin/env bash
# `make images` without Docker: the data-plane and operator images as OCI image archives, built from
# exactly what the Dockerfiles' runtime stage holds, on a base made here from the running Node 24.
#
#   scripts/images.sh <outdir> <tag>
#
# Writes <outdir>/harmony-<name>-<tag>.oci.tar (load with `ctr -n k8s.io images import` or
# `docker load`) and <outdir>/harmony-<name>.cdx.json (its SBOM, as `make images` does with Docker).
# Layers: (1) the base, laid out like gcr.io/distroless/nodejs24 — /nodejs/bin/node (stripped), the shared
# libraries `ldd` lists and ld.so, CA certificates, passwd/group with nonroot (65532), /tmp — and no
# shell; (2) /app, the folder scripts/runtime-bundle.sh builds, and /usr/share/harmony/sbom.cdx.json.
# Image config as in docker/<name>.Dockerfile: user 65532, NODE_ENV=production, the same entrypoint.
# Reproducible: SOURCE_DATE_EPOCH (default: the last commit's time) for every mtime and "created".
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 <outdir> <tag>" >&2; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(realpath -m "$1")
tag=$2
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 315532800)}
node_bin=$(readlink -f "$(command -v node)")
case "$(node -v)" in v24.*) ;; *) echo "images.sh: node on PATH is $(node -v), not 24 (make puts Node 24 first)" >&2; exit 1 ;; esac
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/harmony-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- layer 1: the base ------------------------------------------------------------------------
base=$work/base
mkdir -p "$base/nodejs/bin" "$base/etc/ssl/certs" "$base/tmp" "$base/home/nonroot"
# Stripped (issue 15): the official linux-x64 binary carries DWARF debug info and a full symbol
# table, 17 MiB of its 121 that nothing reads at run time. The dynamic symbols that addons link
# against, ICU and the start-up snapshot are untouched; only native frames in gdb/perf lose the names
# of internal functions. `strip` is deterministic, so the layer stays reproducible for a given binutils.
if command -v strip >/dev/null; then
  strip -o "$base/nodejs/bin/node" "$node_bin"
else
  echo "images.sh: no strip (binutils) on PATH; the image carries node unstripped (+17 MiB)" >&2
  cp "$node_bin" "$base/nodejs/bin/node"
fi
# Each library under the path the loader looks it up by (ldd's left column resolved), dereferenced.
ldd "$node_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
  mkdir -p "$base$(dirname "$lib")"
  cp -L "$lib" "$base$lib"
done
[ ! -f /etc/ssl/certs/ca-certificates.crt ] || cp /etc/ssl/certs/ca-certificates.crt "$base/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$base/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$base/etc/group"
chmod 1777 "$base/tmp"
chown 65532:65532 "$base/home/nonroot"
chmod -R go-w,a+rX "$base"
chmod 1777 "$base/tmp"

# ---- layer 2 per image: the runtime bundle ---------------------------------------------------------
image() { # image <name> <json config>
  local name=$1 config=$2 app=$work/$1
  bash "$root/scripts/runtime-bundle.sh" "$name" "$app/app"
  mkdir -p "$app/usr/share/harmony"
  cp "$app/app.cdx.json" "$app/usr/share/harmony/sbom.cdx.json"
  cp "$app/app.cdx.json" "$out/harmony-$name.cdx.json"
  rm "$app/app.cdx.json"
  node "$root/scripts/oci-image.mjs" --out "$out/harmony-$name-$tag.oci.tar" --ref "ghcr.io/runbeam/harmony-$name:$tag" \
    --config "$config" --layer "$base" --layer "$app"
}
env='"PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt","NODE_ENV=production"'
image dataplane '{"User":"65532:65532","ExposedPorts":{"8080/tcp":{},"9090/tcp":{}},"Env":['"$env"',"NODE_OPTIONS=--max-semi-space-size=2"],"Entrypoint":["/nodejs/bin/node","/app/dist/cli.js"],"Cmd":["--config","/etc/harmony/config/config.toml"],"WorkingDir":"/app"}'
image operator '{"User":"65532:65532","ExposedPorts":{"8081/tcp":{},"9443/tcp":{}},"Env":['"$env"'],"Entrypoint":["/nodejs/bin/node","/app/dist/main.js"],"WorkingDir":"/app"}'
ls -l "$out" >&2
