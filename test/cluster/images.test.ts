/**
 * The images `make images` builds without Docker (scripts/images.sh, scripts/oci-image.mjs): what is
 * in them and what is not, and that the same inputs give the same bytes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ROOT } from "../../dataplane/test/helpers.js";
import { buildImages } from "./images.js";

interface Archive {
  files: Map<string, Buffer>;
  index: { manifests: { digest: string; annotations: Record<string, string> }[] };
  manifest: { config: { digest: string }; layers: { digest: string; mediaType: string }[] };
  config: { config: Record<string, unknown>; rootfs: { diff_ids: string[] } };
  /** Every layer's entries: path → content (regular files only). */
  layers: Map<string, Buffer>[];
}

/** Entries of a GNU/ustar tar (names, regular-file contents), enough for what scripts/oci-image.mjs writes. */
function untar(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let longName: string | undefined;
  for (let off = 0; off + 512 <= buf.length;) {
    const h = buf.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (a: number, n: number) => h.toString("latin1", a, a + n).replace(/\0.*$/s, "");
    const size = parseInt(str(124, 12).trim() || "0", 8);
    const type = str(156, 1);
    const body = buf.subarray(off + 512, off + 512 + size);
    const name = longName ?? (str(345, 155) ? `${str(345, 155)}/${str(0, 100)}` : str(0, 100));
    longName = undefined;
    if (type === "L") longName = body.toString("latin1").replace(/\0.*$/s, "");
    else out.set(name.replace(/^\.\//, ""), type === "0" || type === "" ? Buffer.from(body) : Buffer.alloc(0));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function readArchive(path: string): Archive {
  const files = untar(readFileSync(path));
  const blob = (d: string) => files.get(`blobs/sha256/${d.slice(7)}`)!;
  const json = (b: Buffer) => JSON.parse(b.toString("utf8")) as never;
  const index = json(files.get("index.json")!) as Archive["index"];
  const manifest = json(blob(index.manifests[0]!.digest)) as Archive["manifest"];
  const config = json(blob(manifest.config.digest)) as Archive["config"];
  const layers = manifest.layers.map((l) => untar(gunzipSync(blob(l.digest))));
  return { files, index, manifest, config, layers };
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Section names of a little-endian ELF64 file (enough for x86-64 Linux binaries). */
function elfSections(elf: Buffer): string[] {
  assert.equal(elf.toString("latin1", 0, 4), "\x7fELF");
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const [entsize, count, strndx] = [elf.readUInt16LE(0x3a), elf.readUInt16LE(0x3c), elf.readUInt16LE(0x3e)];
  const strtab = Number(elf.readBigUInt64LE(shoff + strndx * entsize + 0x18));
  return Array.from({ length: count }, (_, i) => {
    const at = strtab + elf.readUInt32LE(shoff + i * entsize);
    return elf.toString("latin1", at, elf.indexOf(0, at));
  });
}

test("oci-image.mjs: the same inputs give the same bytes, whatever the files' mtimes and the build dir", () => {
  const tmp = mkdtempSync(join(tmpdir(), "oci-image-test-"));
  try {
    const make = (sub: string, mtime: number) => {
      const dir = join(tmp, sub, "layer");
      mkdirSync(join(dir, "app", "z"), { recursive: true });
      writeFileSync(join(dir, "app", "b.txt"), "b");
      writeFileSync(join(dir, "app", "z", "a.txt"), "a");
      for (const f of ["app/b.txt", "app/z/a.txt", "app/z", "app"]) utimesSync(join(dir, f), mtime, mtime);
      const out = join(tmp, `${sub}.tar`);
      execFileSync(
        "node",
        [
          join(ROOT, "scripts", "oci-image.mjs"),
          "--out",
          out,
          "--ref",
          "example.test/x:1",
          "--config",
          '{"User":"65532:65532"}',
          "--layer",
          dir,
        ],
        {
          env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" },
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      return readFileSync(out);
    };
    const a = make("one", 1_000_000);
    const b = make("two", 2_000_000);
    assert.equal(sha(a), sha(b));
    const arch = readArchive(join(tmp, "one.tar"));
    assert.equal(arch.index.manifests[0]!.annotations["io.containerd.image.name"], "example.test/x:1");
    assert.deepEqual([...arch.layers[0]!.keys()], ["app/", "app/b.txt", "app/z/", "app/z/a.txt"], "sorted, no ./");
    // the diff_id is the uncompressed layer's digest (what containerd checks on unpack)
    const layerBlob = arch.files.get(`blobs/sha256/${arch.manifest.layers[0]!.digest.slice(7)}`)!;
    assert.equal(arch.config.rootfs.diff_ids[0], `sha256:${sha(gunzipSync(layerBlob))}`);
    assert.ok(arch.files.has("manifest.json"), "docker load reads manifest.json");
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test("the data-plane and operator images: non-root, no shell, Node 24 at the distroless path, SBOM inside and beside", async () => {
  const images = await buildImages();
  for (const [name, path, entry] of [
    ["dataplane", images.dataplane, "/app/dist/cli.js"],
    ["operator", images.operator, "/app/dist/main.js"],
  ] as const) {
    const arch = readArchive(path);
    assert.equal(
      arch.index.manifests[0]!.annotations["io.containerd.image.name"],
      `ghcr.io/runbeam/harmony-${name}:0.1.0`,
    );
    assert.equal(arch.config.config.User, "65532:65532", name);
    assert.deepEqual(arch.config.config.Entrypoint, ["/nodejs/bin/node", entry], name);
    const all = new Map(arch.layers.flatMap((l) => [...l].map(([k, v]) => [k.replace(/\/$/, ""), v] as const)));
    for (const shell of ["bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox", "usr/bin/env"])
      assert.ok(!all.has(shell), `${name} has ${shell}`);
    assert.ok(all.has("nodejs/bin/node") && all.has(entry.slice(1)), name);
    const sbom = all.get("usr/share/harmony/sbom.cdx.json")!;
    assert.deepEqual(
      sbom,
      readFileSync(join(images.dir, `harmony-${name}.cdx.json`)),
      `${name}: the SBOM beside is the one inside`,
    );
    const components = (JSON.parse(sbom.toString("utf8")) as { components: unknown[] }).components;
    assert.ok(components.length > 10, `${name}: SBOM lists ${components.length} components`);
  }
});

test("the data-plane image: node is stripped yet runs (ICU, snapshot), and its own /app checks a config", async () => {
  const images = await buildImages();
  const all = new Map(readArchive(images.dataplane).layers.flatMap((l) => [...l]));
  // issue 15 (image size): debug info and the full symbol table are 17 of node's 121 MiB.
  const sections = elfSections(all.get("nodejs/bin/node")!);
  assert.ok(sections.includes(".dynsym"), "addons link against the dynamic symbols");
  assert.deepEqual(
    sections.filter((s) => s === ".symtab" || s.startsWith(".debug")),
    [],
  );
  // The image's files on the host: its node, and /app as the image holds it (pruned node_modules).
  const dir = mkdtempSync(join(tmpdir(), "image-files-"));
  try {
    for (const [path, body] of all) {
      if ((!path.startsWith("app/") && path !== "nodejs/bin/node") || path.endsWith("/")) continue;
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), body, { mode: 0o755 });
    }
    const node = join(dir, "nodejs/bin/node");
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", NODE_ENV: "production" };
    const intl =
      'process.version + " " + new Intl.DateTimeFormat("de-DE", { month: "long", timeZone: "UTC" }).format(0)';
    assert.match(execFileSync(node, ["-p", intl], { env, encoding: "utf8" }), /^v24\.\d+\.\d+ Januar\n$/);
    // ESM links every static import before --check runs: the whole graph resolves from the pruned tree.
    const check = execFileSync(
      node,
      [
        "--max-semi-space-size=2",
        join(dir, "app/dist/cli.js"),
        "--check",
        "--config",
        join(ROOT, "examples/default/config.toml"),
      ],
      { env, encoding: "utf8", cwd: dir },
    );
    assert.match(check, /: ok \(/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
