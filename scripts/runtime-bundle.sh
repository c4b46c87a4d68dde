#!/usr/bin/env bash
# Builds the runtime folder of a Harmony image: exactly what the runtime stage of
# docker/<workspace>.Dockerfile copies to /app, so it can be built and run without Docker, and its
# SBOM beside it.
#
#   scripts/runtime-bundle.sh <dataplane|operator> <outdir>
#
# Reproducible: every file's mtime is SOURCE_DATE_EPOCH (default: the last commit's time, else
# 1980-01-01), modes are normalised, and <outdir>.cdx.json is the CycloneDX SBOM of what <outdir>
# holds (`npm sbom` over the installed production tree, shaped and made byte-stable by scripts/sbom.mjs).
#
# <outdir> gets package.json, dist/ (compiled from the workspace's sources), the files it reads at run
# time (the data plane's schema/) and node_modules/ with the
# production dependencies at the versions package-lock.json pins (npm ci --omit=dev), less the files
# node never loads (prune_modules below), laid out so that
# `node <outdir>/dist/<entry>.js` resolves everything inside <outdir>: workspace links become real
# copies, and nothing points back into the repository. Needs the repository's dev dependencies
# installed (npm ci) for the TypeScript compiler, and the npm registry (or a warm npm cache).
set -euo pipefail

usage() {
  echo "usage: $0 <dataplane|operator> <outdir>" >&2
  exit 2
}
die() {
  echo "runtime-bundle: $*" >&2
  exit 1
}

[ $# -eq 2 ] || usage
ws=$1
out=$2
case "$ws" in
  dataplane | operator) ;;
  *) usage ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
workspaces=(dataplane operator)
tsc="$root/node_modules/.bin/tsc"
[ -x "$tsc" ] || die "$tsc is missing; run npm ci in $root first"

out=$(realpath -m "$out")
sbom=$out.cdx.json
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 315532800)}
[[ "$epoch" =~ ^[0-9]+$ ]] || die "SOURCE_DATE_EPOCH must be seconds since 1970, not '$epoch'"
case "$out/" in
  "$root"/*) die "$out is inside the repository; npm and tsc would see the workspace around it" ;;
esac
mkdir -p "$out"
[ -z "$(ls -A "$out")" ] || die "$out is not empty"

stage=$(mktemp -d "${TMPDIR:-/tmp}/harmony-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT

# Production dependencies of the one workspace, as locked. npm ci checks the lock against every
# workspace's manifest, so all manifests go into the stage, but only $ws's tree is installed.
cp "$root/package.json" "$root/package-lock.json" "$stage/"
for w in "${workspaces[@]}"; do
  mkdir -p "$stage/$w"
  cp "$root/$w/package.json" "$stage/$w/"
done
# --ignore-scripts: no production dependency needs an install script (core-js-pure's only prints).
(cd "$stage" && npm ci --omit=dev --workspace "$ws" --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)

# The SBOM of exactly that tree (npm sbom reads node_modules). npm checks the tree against the
# manifests, so the stage's copies (the repository's are left alone) describe what was installed:
# no devDependencies, only the workspaces npm ci linked, and a version on the root for its purl.
# npm's --workspace filter is not used: it drops packages that the root's dev tools also use.
ref=$(node -p 'const p = require(process.argv[1]); p.name + "@" + p.version' "$root/$ws/package.json")
(
  cd "$stage"
  node --input-type=module - "${ref##*@}" <<'JS'
import { readFileSync, writeFileSync, readdirSync, realpathSync } from "node:fs";
import { basename } from "node:path";
const edit = (file, f) => writeFileSync(file, JSON.stringify(f(JSON.parse(readFileSync(file, "utf8")))));
const linked = readdirSync("node_modules/@harmony").map((l) => basename(realpathSync(`node_modules/@harmony/${l}`)));
edit("package.json", ({ devDependencies, ...p }) => ({ ...p, version: process.argv[2], workspaces: linked }));
for (const w of linked) edit(`${w}/package.json`, ({ devDependencies, ...p }) => p);
JS
  npm sbom --sbom-format cyclonedx --omit dev --loglevel=error
) | node "$root/scripts/sbom.mjs" "$epoch" "$ref" >"$stage/sbom.json"

# Files a workspace reads at run time beside dist/ (the data plane loads its JSON Schemas from schema/).
RUNTIME_FILES=(package.json schema)

compile() { # compile <workspace> <dest>: its sources to <dest>/dist, plus its runtime files
  local f
  for f in "${RUNTIME_FILES[@]}"; do
    [ ! -e "$root/$1/$f" ] || cp -R "$root/$1/$f" "$2/"
  done
  "$tsc" -p "$root/$1/tsconfig.build.json" --outDir "$2/dist" --sourceMap false
}

# move_modules <from> <to>: a workspace's nested node_modules (versions that clash with what is
# hoisted for other workspaces) into <to>; refuses to shadow a hoisted package of the same name.
move_modules() {
  local from=$1 to=$2 entry name
  [ -d "$from" ] || return 0
  mkdir -p "$to"
  for entry in "$from"/* "$from"/@*/*; do
    [ -e "$entry" ] || continue
    name=${entry#"$from"/}
    case "$name" in @*/*) ;; @*) continue ;; esac
    [ ! -e "$to/$name" ] || die "$name is both hoisted and nested for $ws; the bundle cannot be flattened"
    mkdir -p "$(dirname "$to/$name")"
    mv "$entry" "$to/$name"
  done
}

mv "$stage/node_modules" "$out/node_modules"
# npm's hidden lockfile describes the stage's layout, not this one; npm reads it, node never does.
rm -f "$out/node_modules/.package-lock.json"
compile "$ws" "$out"
move_modules "$stage/$ws/node_modules" "$out/node_modules"
# Workspaces the bundle depends on are symlinks into the stage: replace each with a built copy.
for link in "$out"/node_modules/@harmony/*; do
  [ -L "$link" ] || continue
  dep=$(basename "$link")
  rm "$link"
  [ "$dep" != "$ws" ] || continue
  mkdir "$link"
  compile "$dep" "$link"
  move_modules "$stage/$dep/node_modules" "$link/node_modules"
done
rmdir "$out/node_modules/@harmony" 2>/dev/null || true
# Files that node never loads from node_modules, half the bundle's bytes (issue 15: image size):
# source maps (read only with --enable-source-maps, which the images do not set), type declarations and
# TypeScript sources (node refuses to strip types under node_modules), Markdown documentation (license
# texts stay, whatever their extension), prebuilt addons for the Bare runtime (`*.bare`: node cannot
# load them) and each package's own test/docs folder. Every package keeps its package.json and license,
# so the SBOM below still lists exactly the packages that are here. test/runtime-bundle.test.ts checks
# that the data plane and the operator still run from the pruned tree.
prune_modules() { # prune_modules <node_modules>
  find "$1" -regextype posix-extended -type d \
    -regex '.*/node_modules/(@[^/]+/)?[^/]+/(test|tests|__tests__|docs)' -prune -exec rm -rf {} +
  find "$1" -type f \( -name '*.map' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.bare' \
    -o \( \( -iname '*.md' -o -iname '*.markdown' \) ! -iname 'licen[cs]e*' ! -iname 'notice*' ! -iname 'copying*' \) \) -delete
  find "$1" -mindepth 1 -type d -empty -delete
}
prune_modules "$out/node_modules"
# Every symlink left (node_modules/.bin) must stay inside the bundle.
while IFS= read -r -d '' l; do
  target=$(readlink -f "$l") || die "dangling symlink $l"
  case "$target" in "$out"/*) ;; *) die "$l points outside the bundle ($target)" ;; esac
done < <(find "$out" -type l -print0)

# Reproducible bytes and metadata: modes from the umask-independent rule, one mtime for everything.
chmod -R u+rwX,go+rX,go-w "$out"
mv "$stage/sbom.json" "$sbom"
chmod 644 "$sbom"
find "$out" "$sbom" -exec touch -h -d "@$epoch" {} +

echo "runtime-bundle: $ws → $out ($(du -sh "$out" | cut -f1)), SBOM $sbom" >&2
