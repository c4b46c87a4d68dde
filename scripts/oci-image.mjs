#!/usr/bin/env node
// Writes a container image as an OCI image archive (an OCI layout in a tar, plus Docker's manifest.json
// so `docker load` takes it too) from directories, one layer each. No daemon and no registry: this is
// how `make images` builds where Docker with BuildKit is not available (scripts/images.sh), and how the
// real-node suite makes its pause image. `ctr -n k8s.io images import <archive>` hands it to containerd.
//
//   node scripts/oci-image.mjs --out <archive.tar> --ref <name:tag> --config '<json>' --layer <dir>...
//
// --config is the image config's "config" object (Entrypoint, Cmd, Env, User, WorkingDir,
// ExposedPorts). Reproducible: each layer is a GNU tar of its directory with names sorted, owner 0:0 and
// every mtime SOURCE_DATE_EPOCH, gzip without a name or time, and the JSON documents have fixed key
// order and "created" = SOURCE_DATE_EPOCH; the same inputs give the same bytes.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    out: { type: "string" },
    ref: { type: "string" },
    config: { type: "string", default: "{}" },
    layer: { type: "string", multiple: true },
  },
});
const die = (m) => {
  process.stderr.write(`oci-image: ${m}\n`);
  process.exit(2);
};
if (!values.out || !values.ref || !values.layer?.length)
  die("usage: --out <tar> --ref <name:tag> --config <json> --layer <dir>...");
const ref = values.ref;
const tag = ref.slice(ref.lastIndexOf(":") + 1);
if (!tag || tag.includes("/")) die(`--ref ${ref} has no tag`);
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? 315532800);
if (!Number.isInteger(epoch) || epoch < 0) die("SOURCE_DATE_EPOCH must be seconds since 1970");
const created = new Date(epoch * 1000).toISOString().replace(".000Z", "Z");

const sh = (cmd, args, opts = {}) => {
  const stdin = opts.input === undefined ? "ignore" : "pipe";
  const r = spawnSync(cmd, args, { stdio: [stdin, "pipe", "inherit"], maxBuffer: 1 << 30, ...opts });
  if (r.status !== 0) die(`${cmd} ${args.join(" ")} failed (${r.status ?? r.signal})`);
  return r.stdout;
};
const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");

const stage = mkdtempSync(join(tmpdir(), "oci-image-"));
try {
  const blobs = join(stage, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const putBlob = (buf) => {
    const hex = sha256(buf);
    writeFileSync(join(blobs, hex), buf);
    return { digest: `sha256:${hex}`, size: buf.length };
  };

  const layers = [];
  const diffIds = [];
  for (const dir of values.layer) {
    const abs = resolve(dir);
    if (!statSync(abs).isDirectory()) die(`--layer ${dir} is not a directory`);
    const entries = readdirSync(abs).sort();
    if (entries.length === 0) die(`--layer ${dir} is empty`);
    // Paths without "./" (as docker writes them); --sort=name orders everything below the top level.
    const tar = sh("tar", [
      "-C",
      abs,
      "--sort=name",
      "--format=gnu",
      `--mtime=@${epoch}`,
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "-cf",
      "-",
      "--",
      ...entries,
    ]);
    diffIds.push(`sha256:${sha256(tar)}`);
    const gz = sh("gzip", ["-n", "-6", "-c"], { input: tar });
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...putBlob(gz) });
  }

  const config = {
    created,
    architecture: "amd64",
    os: "linux",
    config: JSON.parse(values.config),
    rootfs: { type: "layers", diff_ids: diffIds },
    history: values.layer.map(() => ({ created, created_by: "scripts/oci-image.mjs" })),
  };
  const configBlob = putBlob(Buffer.from(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...configBlob },
    layers,
  };
  const manifestBlob = putBlob(Buffer.from(JSON.stringify(manifest)));
  writeFileSync(join(stage, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(stage, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifestBlob,
          // containerd names the imported image after io.containerd.image.name.
          annotations: { "io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
  writeFileSync(
    join(stage, "manifest.json"),
    JSON.stringify([
      {
        Config: `blobs/sha256/${configBlob.digest.slice(7)}`,
        RepoTags: [ref],
        Layers: layers.map((l) => `blobs/sha256/${l.digest.slice(7)}`),
      },
    ]),
  );
  sh("find", [stage, "-exec", "touch", "-h", "-d", `@${epoch}`, "{}", "+"]);
  const archive = sh("tar", [
    "-C",
    stage,
    "--sort=name",
    "--format=gnu",
    `--mtime=@${epoch}`,
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "--mode=a+rX,go-w",
    "-cf",
    "-",
    "oci-layout",
    "index.json",
    "manifest.json",
    "blobs",
  ]);
  const out = resolve(values.out);
  writeFileSync(`${out}.tmp`, archive);
  renameSync(`${out}.tmp`, out);
  const size = layers.reduce((n, l) => n + l.size, 0);
  const unpacked = values.layer.reduce(
    (n, d) =>
      n +
      Number(
        sh("du", ["-sb", resolve(d)])
          .toString()
          .split("\t")[0],
      ),
    0,
  );
  process.stderr.write(
    `oci-image: ${ref} → ${out} (${manifestBlob.digest}; layers ${(size / 2 ** 20).toFixed(1)} MiB compressed, ${(unpacked / 2 ** 20).toFixed(1)} MiB unpacked)\n`,
  );
} finally {
  rmSync(stage, { recursive: true, force: true });
}
