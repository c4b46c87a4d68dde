/**
 * The images' runtime folders without Docker: scripts/runtime-bundle.sh builds exactly what the
 * runtime stage of docker/<name>.Dockerfile copies, and the data plane must run from that folder
 * with plain node — no repository, no dev dependencies, no symlink back into the workspace. Beside
 * each folder, <folder>.cdx.json is its SBOM, and a rebuild gives the same bytes.
 */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { ROOT, freePort, http, sleep, tempDir } from "../dataplane/test/helpers.js";

const SCRIPT = join(ROOT, "scripts/runtime-bundle.sh");
const DEV_ONLY = ["typescript", "tsx", "esbuild", "eslint", "prettier", "typescript-eslint", "@eslint/js"];

// Without NODE_PATH a module can only come from the bundle's own node_modules.
const cleanEnv = (): NodeJS.ProcessEnv => {
  const env = { ...process.env };
  delete env.NODE_PATH;
  delete env.NODE_OPTIONS; // the test runner's --import tsx must not help the bundle
  return env;
};

// A fixed epoch, so the mtimes the script sets can be checked (and differ from any real build time).
const EPOCH = 1_700_000_000;

function bundle(workspace: string): string {
  const out = join(tempDir("harmony-bundle-"), "app");
  const env = { ...cleanEnv(), SOURCE_DATE_EPOCH: String(EPOCH) };
  const r = spawnSync("bash", [SCRIPT, workspace, out], { encoding: "utf8", env, timeout: 300_000 });
  assert.equal(r.status, 0, `runtime-bundle.sh ${workspace} failed:\n${r.stdout}\n${r.stderr}`);
  return out;
}

/** Every symlink in `dir` with where it points, for the "nothing leaves the bundle" check. */
function symlinks(dir: string): { link: string; target: string }[] {
  const found: { link: string; target: string }[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isSymbolicLink()) found.push({ link: p, target: realpathSync(p) });
      else if (e.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return found;
}

function assertSelfContained(out: string): void {
  for (const { link, target } of symlinks(out)) {
    assert.ok(!relative(out, target).startsWith(".."), `${link} points outside the bundle, to ${target}`);
  }
  for (const dev of DEV_ONLY) {
    assert.ok(!existsSync(join(out, "node_modules", dev)), `dev dependency ${dev} is in the bundle`);
  }
}

let dataplaneOut: string;
let operatorOut: string;

before(() => {
  dataplaneOut = bundle("dataplane");
  operatorOut = bundle("operator");
});

test("the script refuses a non-empty or in-repository output folder and an unknown workspace", () => {
  const run = (...args: string[]) => spawnSync("bash", [SCRIPT, ...args], { encoding: "utf8" });
  assert.equal(run("gateway", tempDir()).status, 2);
  const full = tempDir();
  writeFileSync(join(full, "x"), "");
  assert.match(run("dataplane", full).stderr, /is not empty/);
  assert.match(run("dataplane", join(ROOT, ".tmp", "bundle-test")).stderr, /inside the repository/);
});

test("data-plane bundle: package.json, dist, schema and production node_modules only", () => {
  assert.deepEqual(readdirSync(dataplaneOut).sort(), ["dist", "node_modules", "package.json", "schema"]);
  // Read at run time (config validation), so it must ship beside dist/.
  assert.ok(existsSync(join(dataplaneOut, "schema/harmony-config.schema.json")));
  const pkg = JSON.parse(readFileSync(join(dataplaneOut, "package.json"), "utf8")) as {
    name: string;
    dependencies: Record<string, string>;
  };
  assert.equal(pkg.name, "@harmony/dataplane");
  assert.ok(existsSync(join(dataplaneOut, "dist/cli.js")));
  assert.ok(!existsSync(join(dataplaneOut, "dist/cli.js.map")), "source maps point at sources the image lacks");
  for (const dep of Object.keys(pkg.dependencies)) {
    assert.ok(existsSync(join(dataplaneOut, "node_modules", dep, "package.json")), `${dep} is missing`);
  }
  assert.ok(!existsSync(join(dataplaneOut, "node_modules/@harmony")));
  assertSelfContained(dataplaneOut);
});

/** Paths under `dir`/node_modules that node never loads (runtime-bundle.sh prunes them: issue 15, image size). */
function unloadable(dir: string): string[] {
  const found: string[] = [];
  const walk = (d: string, inPackageRoot: boolean) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (inPackageRoot && ["test", "tests", "__tests__", "docs"].includes(e.name)) found.push(p);
        // A package root is a node_modules/<name> or node_modules/@scope/<name> folder.
        const parent = d.split("/").at(-1)!;
        walk(p, parent === "node_modules" ? !e.name.startsWith("@") : parent.startsWith("@"));
      } else if (
        /\.(map|ts|mts|cts|bare)$/.test(e.name) ||
        (/\.(md|markdown)$/i.test(e.name) && !/^(licen[cs]e|notice|copying)/i.test(e.name))
      ) {
        found.push(p);
      }
    }
  };
  walk(join(dir, "node_modules"), false);
  return found;
}

test("bundles hold no source maps, type declarations, Markdown docs, Bare addons or package test folders", () => {
  for (const [out, pkg] of [
    [dataplaneOut, "undici"],
    [operatorOut, "@kubernetes/client-node"],
  ] as const) {
    const extra = unloadable(out);
    assert.deepEqual(extra.slice(0, 10), [], `${extra.length} files node never loads in ${out}`);
    // License texts stay beside the code they cover, and every package keeps its manifest (the SBOM).
    assert.ok(existsSync(join(out, "node_modules", pkg, "LICENSE")), `${pkg}'s LICENSE was pruned`);
    assert.ok(existsSync(join(out, "node_modules", pkg, "package.json")));
  }
});

test("the bundled data plane serves the default example with plain node, from outside the repository", async (t) => {
  const web = await freePort();
  const mgmt = await freePort();
  const conf = tempDir("harmony-bundle-conf-");
  cpSync(join(ROOT, "examples/default"), conf, { recursive: true });
  const rewrite = (file: string) =>
    writeFileSync(
      file,
      readFileSync(file, "utf8")
        .replace(/bind_port = 8080/g, `bind_port = ${web}`)
        .replace(/bind_port = 9090/g, `bind_port = ${mgmt}`)
        .replace(/127\.0\.0\.1:8080/g, `127.0.0.1:${web}`),
    );
  rewrite(join(conf, "config.toml"));
  rewrite(join(conf, "pipelines/proxy.toml"));

  const proc = spawn(process.execPath, [join(dataplaneOut, "dist/cli.js"), "--config", join(conf, "config.toml")], {
    cwd: conf,
    env: cleanEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  proc.stdout.setEncoding("utf8").on("data", (c: string) => (log += c));
  proc.stderr.setEncoding("utf8").on("data", (c: string) => (log += c));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGKILL");
      await once(proc, "exit");
    }
  });

  const end = Date.now() + 30_000;
  let health;
  while (Date.now() < end && proc.exitCode === null) {
    health = await http(`http://127.0.0.1:${mgmt}/healthz`).catch(() => undefined);
    if (health?.status === 200) break;
    await sleep(100);
  }
  assert.equal(health?.status, 200, `the bundled data plane did not come up:\n${log}`);

  const echo = await http(`http://127.0.0.1:${web}/echo/hello?x=1`);
  assert.equal(echo.status, 200, echo.text);
  assert.match(echo.text, /\/hello/);
  // Through the HTTP backend (undici) to the echo pipeline: the whole request path runs from the bundle.
  const proxied = await http(`http://127.0.0.1:${web}/proxy/via-upstream`);
  assert.equal(proxied.status, 200, proxied.text);
  assert.match(proxied.text, /via-upstream/);
  const info = await http(`http://127.0.0.1:${mgmt}/admin/info`);
  assert.equal(info.status, 200);
  assert.equal((info.json() as { version?: string }).version, "0.1.0");

  proc.kill("SIGTERM");
  const [code] = (await once(proc, "exit")) as [number | null];
  assert.equal(code, 0, log);
});

test("operator bundle: the data plane's validator is a real copy inside it and every import resolves", () => {
  assert.deepEqual(readdirSync(operatorOut).sort(), ["dist", "node_modules", "package.json"]);
  const dp = join(operatorOut, "node_modules/@harmony/dataplane");
  assert.ok(lstatSync(dp).isDirectory() && !lstatSync(dp).isSymbolicLink());
  assert.ok(existsSync(join(dp, "dist/index.js")));
  assert.ok(existsSync(join(operatorOut, "node_modules/node-forge/package.json")));
  assert.ok(!existsSync(join(operatorOut, "node_modules/@types/node-forge")), "@types/node-forge is a dev dependency");
  assert.ok(!existsSync(join(operatorOut, "node_modules/@harmony/operator")));
  assertSelfContained(operatorOut);
  // ESM links every static import before main() runs, so --help proves the whole graph resolves.
  const r = spawnSync(process.execPath, [join(operatorOut, "dist/main.js"), "--help"], {
    cwd: tempDir(),
    env: cleanEnv(),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /--webhook-port/);
  // The operator validates every config it renders with the data plane's checker, which loads the
  // config JSON Schema from disk: run that copy's --check on the default example.
  const check = spawnSync(
    process.execPath,
    [join(dp, "dist/cli.js"), "--check", "--config", join(ROOT, "examples/default/config.toml")],
    { cwd: tempDir(), env: cleanEnv(), encoding: "utf8" },
  );
  assert.equal(check.status, 0, `${check.stdout}\n${check.stderr}`);
});

interface Bom {
  serialNumber: string;
  metadata: { timestamp: string; component: { "bom-ref": string; name: string; type: string } };
  components: { "bom-ref": string; purl: string }[];
}

/** name@version of every package installed under `dir`/node_modules, nested ones included. */
function installedPackages(dir: string): Set<string> {
  const found = new Set<string>();
  const walk = (nm: string) => {
    if (!existsSync(nm)) return;
    for (const e of readdirSync(nm)) {
      if (e.startsWith(".")) continue;
      const names = e.startsWith("@") ? readdirSync(join(nm, e)).map((x) => join(e, x)) : [e];
      for (const n of names) {
        const pj = join(nm, n, "package.json");
        if (!existsSync(pj)) continue;
        const { name, version } = JSON.parse(readFileSync(pj, "utf8")) as { name: string; version: string };
        found.add(`${name}@${version}`);
        walk(join(nm, n, "node_modules"));
      }
    }
  };
  walk(join(dir, "node_modules"));
  return found;
}

for (const ws of ["dataplane", "operator"]) {
  test(`${ws} bundle: the SBOM beside it lists exactly the packages it holds, with the workspace as subject`, () => {
    const out = ws === "dataplane" ? dataplaneOut : operatorOut;
    const bom = JSON.parse(readFileSync(`${out}.cdx.json`, "utf8")) as Bom;
    assert.equal(bom.metadata.component["bom-ref"], `@harmony/${ws}@0.1.0`);
    assert.equal(bom.metadata.component.name, `@harmony/${ws}`);
    assert.equal(bom.metadata.component.type, "application");
    const listed = bom.components.map((c) => c["bom-ref"]).sort();
    assert.deepEqual(listed, [...installedPackages(out)].sort());
    assert.ok(
      listed.some((r) => r.startsWith("undici@8.")),
      "undici 8 is what runs",
    );
    assert.equal(bom.metadata.timestamp, new Date(EPOCH * 1000).toISOString());
    assert.match(bom.serialNumber, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
}

/** One hash over every entry's path, type, mode, mtime and content (or link target), in sorted order. */
function treeDigest(dir: string): { digest: string; mtimes: Set<number> } {
  const h = createHash("sha256");
  const mtimes = new Set<number>();
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      mtimes.add(Math.floor(st.mtimeMs / 1000));
      h.update(`${relative(dir, p)}\0${st.mode}\0${Math.floor(st.mtimeMs / 1000)}\0`);
      if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else if (st.isDirectory()) walk(p);
      else h.update(readFileSync(p));
      h.update("\0");
    }
  };
  walk(dir);
  return { digest: h.digest("hex"), mtimes };
}

test("a second build of the data-plane bundle has the same bytes, modes and mtimes, SBOM included", () => {
  const again = bundle("dataplane");
  const first = treeDigest(dataplaneOut);
  assert.deepEqual([...first.mtimes], [EPOCH], "every entry carries SOURCE_DATE_EPOCH as its mtime");
  assert.equal(treeDigest(again).digest, first.digest);
  assert.equal(readFileSync(`${again}.cdx.json`, "utf8"), readFileSync(`${dataplaneOut}.cdx.json`, "utf8"));
});
