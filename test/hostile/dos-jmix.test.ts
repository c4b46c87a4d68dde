/**
 * JMIX uploads as a denial of service (issue 12): a small archive that unpacks to gigabytes (a zip
 * or tar.gz bomb) is refused on its compression ratio, before (zip) or soon after (tar.gz) it
 * fills the disk; uploads beyond `max_concurrent_uploads` get 503 with Retry-After; and no error
 * body says where on the server anything lives. Real binary, real archives.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { ZipArchive } from "archiver";
import tarStream from "tar-stream";
import {
  baseConfig,
  eventually,
  startDataplane,
  tempDir,
  writeTree,
  type Dataplane,
} from "../../dataplane/test/helpers.js";
import { assertStillServes, rawExchange } from "./harness.js";

let dp: Dataplane;
let storeDir: string;
/** Every error body the tests saw, checked for server paths at the end. */
const bodies: string[] = [];

const MiB = 1024 * 1024;

const pipeline = (name: string, options: string) => `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
middleware = ["${name}_builder"]
backends = ["echo"]

[endpoints.${name}_in]
service = "jmix"
options = { path_prefix = "/${name}" }

[middleware.${name}_builder]
type = "jmix_builder"
options = { store_dir = "${storeDir}" ${options} }
`;

before(async () => {
  storeDir = tempDir("harmony-jmix-dos-");
  const config = baseConfig(
    // Shipped defaults.
    pipeline("jx", "") +
      // Tight limits: a 10:1 ratio and one upload at a time, in another store.
      pipeline("tight", `, max_compression_ratio = 10, max_concurrent_uploads = 1`).replace(
        `store_dir = "${storeDir}"`,
        `store_dir = "${storeDir}/tight"`,
      ) +
      `
[backends.echo]
service = "echo"
`,
  );
  dp = await startDataplane(join(writeTree({ "config.toml": config }), "config.toml"));
});

after(async () => {
  await dp?.stop();
});

async function zipOf(entries: [string, Buffer][]): Promise<Buffer> {
  const zip = new ZipArchive({ zlib: { level: 9 } });
  const chunks: Buffer[] = [];
  zip.on("data", (c: Buffer) => chunks.push(c));
  const ended = once(zip, "end");
  for (const [name, data] of entries) zip.append(data, { name });
  await zip.finalize();
  await ended;
  return Buffer.concat(chunks);
}

async function tarGzOf(name: string, data: Buffer): Promise<Buffer> {
  const pack = tarStream.pack();
  const gz = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gz.on("data", (c: Buffer) => chunks.push(c));
  const ended = once(gz, "end");
  pack.pipe(gz);
  pack.entry({ name, size: data.length }, data);
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

async function upload(prefix: string, body: Buffer, type: string) {
  const r = await fetch(dp.url("default", `${prefix}/api/jmix`), {
    method: "POST",
    headers: { "content-type": type },
    body,
  });
  const text = await r.text();
  if (r.status >= 400) bodies.push(text);
  return { status: r.status, text, headers: r.headers };
}

test("a zip bomb is refused on its entry's header with the default limits, nothing written", async () => {
  // 256 MiB of zeros deflate to ~250 KiB: far past 100:1.
  const bomb = await zipOf([["bomb.bin", Buffer.alloc(256 * MiB)]]);
  assert.ok(bomb.length < 2 * MiB);
  const r = await upload("/jx", bomb, "application/zip");
  assert.equal(r.status, 400, r.text);
  assert.match(r.text, /jmix-archive/);
  assert.match(r.text, /entry \\"bomb\.bin\\" expands more than 100 times/);
  await assertStillServes(dp, "default", "/jx/api/jmix/00000000-0000-0000-0000-000000000000", 404);
});

test("a tar.gz bomb is refused once it outgrows the ratio", async () => {
  const bomb = await tarGzOf("bomb.bin", Buffer.alloc(64 * MiB));
  assert.ok(bomb.length < MiB);
  const r = await upload("/tight", bomb, "application/gzip");
  assert.equal(r.status, 400, r.text);
  assert.match(r.text, /expands more than 10 times its compressed size/);
});

test("an archive that fails while unpacking names the entry, not the server's paths", async () => {
  const r = await upload(
    "/jx",
    await zipOf([
      ["dup.txt", Buffer.from("one")],
      ["dup.txt", Buffer.from("two")],
    ]),
    "application/zip",
  );
  assert.equal(r.status, 400, r.text);
  assert.match(r.text, /named twice/);
});

test("uploads beyond max_concurrent_uploads get 503 with Retry-After, and the slot comes back", async () => {
  // The first upload announces 1 MiB and sends 10 bytes: it holds its slot while it waits.
  const head =
    "POST /tight/api/jmix HTTP/1.1\r\nhost: t\r\ncontent-type: application/zip\r\n" + `content-length: ${MiB}\r\n\r\n`;
  const holder = rawExchange(dp.ports.default!, [head, "PK\x03\x04012345"], 4000);
  const small = await zipOf([["readme.txt", Buffer.from("hi")]]);
  const busy = await eventually("a 503 while the first upload holds the slot", async () => {
    const r = await upload("/tight", small, "application/zip");
    return r.status === 503 ? r : undefined;
  });
  assert.ok(Number(busy.headers.get("retry-after")) > 0);
  assert.match(busy.text, /problem|jmix-busy/);
  await holder; // the raw client gives up and closes: the first upload fails and frees its slot
  const after = await eventually("the slot to come back", async () => {
    const r = await upload("/tight", small, "application/zip");
    return r.status !== 503 ? r : undefined;
  });
  assert.equal(after.status, 400); // no manifest: refused as JMIX, not for being busy
  assert.match(after.text, /no manifest/);
});

test("no error body holds a server path", () => {
  assert.ok(bodies.length >= 4);
  for (const b of bodies) {
    assert.ok(!b.includes(storeDir), `the store path leaked: ${b}`);
    assert.ok(!b.includes("/tmp/"), `a /tmp path leaked: ${b}`);
  }
});
