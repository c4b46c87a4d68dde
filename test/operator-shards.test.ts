/**
 * A gateway too large for one ConfigMap (README: Large gateways): 2,500 pipelines on the real
 * apiserver, sharded by the operator, served by a data plane on the API watch and then by one on
 * files laid out as the kubelet lays out a projected volume. Shards written out of order by hand
 * (what a reader sees while the operator is halfway through a change) never make either data
 * plane serve fewer pipelines.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startPushRig, type PushRig } from "./config-push.js";
import { startProjectedSyncer, type Syncer } from "./syncer.js";
import { eventually, http, startDataplane, tempDir, type Dataplane } from "../dataplane/test/helpers.js";
import { SHARD_MANIFEST, shardDigest, shardDigestKey } from "../dataplane/src/config/shards.js";

const N = 2500;
const MAIN = "edge-harmony-config";
let rig: PushRig | undefined;
let fileDp: Dataplane | undefined;
let syncer: Syncer | undefined;
after(async () => {
  syncer?.stop();
  await fileDp?.stop();
  await rig?.stop();
});

type Cm = { metadata: { name: string; resourceVersion: string }; data: Record<string, string> };

test("2,500 pipelines: shards under the limit, one edit one shard, torn writes never serve fewer", async () => {
  rig = await startPushRig({ pipelines: N });
  const { ns, kubectl, webPort } = rig;
  const r = rig;
  const url = (p: string) => `http://127.0.0.1:${webPort}${p}`;
  const getCm = async (name: string) =>
    JSON.parse(await kubectl(["get", "configmap", name, "-n", ns, "-o", "json"])) as Cm;
  const shardsOf = async () => {
    const main = await getCm(MAIN);
    const names = Object.keys((JSON.parse(main.data[SHARD_MANIFEST]!) as { shards: object }).shards);
    return { main, shards: await Promise.all(names.map(getCm)) };
  };

  // The layout: several shards, each well under the 1 MiB object limit, every pipeline in one.
  const before = await shardsOf();
  assert.ok(before.shards.length >= 2, `expected several shards, got ${before.shards.length}`);
  for (const s of before.shards) {
    const bytes = Buffer.byteLength(JSON.stringify(s));
    assert.ok(bytes < 1_048_576, `${s.metadata.name} is ${bytes} bytes`);
  }
  const placed = before.shards.flatMap((s) => Object.keys(s.data).filter((k) => k.startsWith("pipeline.")));
  assert.equal(placed.length, N);
  assert.equal(new Set(placed).size, N);
  assert.ok(!Object.keys(before.main.data).some((k) => k.startsWith("pipeline.")), "no pipeline left in main");

  // One projected volume of the set; the Role reads exactly these names.
  const deploy = JSON.parse(await kubectl(["get", "deployment", "edge-harmony", "-n", ns, "-o", "json"])) as {
    metadata: { generation: number };
    spec: {
      template: { spec: { volumes: { name: string; projected?: { sources: { configMap: { name: string } }[] } }[] } };
    };
  };
  const vol = deploy.spec.template.spec.volumes.find((v) => v.name === "config")!;
  assert.deepEqual(
    vol.projected?.sources.map((s) => s.configMap.name),
    [MAIN, ...before.shards.map((s) => s.metadata.name)],
  );
  // The set grew as pipelines arrived (N doubled): the earlier sets' shards, mounted by no pod, are
  // deleted, and then the Role names exactly the current ones.
  const want = [MAIN, ...before.shards.map((s) => s.metadata.name)].sort();
  const readable = async () =>
    [
      ...(
        JSON.parse(await kubectl(["get", "role", "edge-harmony", "-n", ns, "-o", "json"])) as {
          rules: { resources: string[]; resourceNames: string[] }[];
        }
      ).rules.find((x) => x.resources.includes("configmaps"))!.resourceNames,
    ].sort();
  let seen: string[] = [];
  await eventually(
    "the Role to name the current set only",
    async () => (seen = await readable()).join() === want.join(),
    {
      timeoutMs: 60_000,
      context: () => `Role names ${seen.join(", ")}`,
    },
  );
  const left = (await kubectl(["get", "configmaps", "-n", ns, "-o", "name"]))
    .split("\n")
    .filter((n) => n.startsWith(`configmap/${MAIN}`))
    .sort();
  assert.deepEqual(
    left,
    want.map((n) => `configmap/${n}`),
  );

  // The API-watch data plane serves all of them.
  const api = rig.dp;
  const loadedCounts = () => api.logs.filter((l) => l.message === "config loaded").map((l) => l.pipelines as number);
  await eventually("all pipelines served through the API", () => loadedCounts().at(-1) === N, { timeoutMs: 120_000 });
  assert.equal((await http(url("/p2499/x"))).text, "upstream /x");

  // A fresh operator (nothing remembered) places every pipeline where it was: an edit then
  // rewrites the one shard holding it, and the main ConfigMap, nothing else.
  await rig.stopOperator();
  rig.startOperator();
  await kubectl([
    "patch",
    "harmonyendpoint",
    "ep-0001",
    "-n",
    ns,
    "--type=merge",
    "-p",
    JSON.stringify({ spec: { pathPrefix: "/moved" } }),
  ]);
  await eventually("the edit served through the API", async () => (await http(url("/moved/y"))).status === 200, {
    timeoutMs: 120_000,
    context: () => r.operatorLog().slice(-3000),
  });
  const edited = await shardsOf();
  const changed = edited.shards.filter(
    (s, i) => s.metadata.resourceVersion !== before.shards[i]!.metadata.resourceVersion,
  );
  assert.deepEqual(
    changed.map((s) => s.metadata.name),
    before.shards.filter((s) => "pipeline.push.pl-0001.toml" in s.data).map((s) => s.metadata.name),
  );
  assert.notEqual(edited.main.metadata.resourceVersion, before.main.metadata.resourceVersion);
  const deployAfter = JSON.parse(await kubectl(["get", "deployment", "edge-harmony", "-n", ns, "-o", "json"])) as {
    metadata: { generation: number };
  };
  assert.equal(deployAfter.metadata.generation, deploy.metadata.generation, "content edits roll no pods");

  // Torn writes, by hand, with the operator stopped: a pipeline moves from shard A to shard B, the
  // shard that loses it written first, the main ConfigMap (the manifest) last.
  await rig.stopOperator();
  const torn = async (dp: Dataplane, key: string, waitLog: (from: number) => Promise<unknown>) => {
    const now = await shardsOf();
    const a = now.shards.find((s) => key in s.data)!;
    const b = now.shards.find((s) => s !== a)!;
    const moved = a.data[key]!.replace(/description = .*/, 'description = "moved by hand"');
    const rewrite = (s: Cm, data: Record<string, string>) => {
      const own = { ...data };
      delete own[shardDigestKey(s.metadata.name)];
      return { ...own, [shardDigestKey(s.metadata.name)]: shardDigest(own) };
    };
    const aData = rewrite(a, Object.fromEntries(Object.entries(a.data).filter(([k]) => k !== key)));
    const bData = rewrite(b, { ...b.data, [key]: moved });
    // A shard is larger than one argv string may be: the patch goes in a file.
    const put = (name: string, data: Record<string, string>) => {
      const file = join(tempDir(), "patch.json");
      writeFileSync(file, JSON.stringify([{ op: "replace", path: "/data", value: data }]));
      return kubectl(["patch", "configmap", name, "-n", ns, "--type=json", "--patch-file", file]);
    };
    const count = () => dp.logs.filter((l) => l.message === "config loaded").length;
    const loadsBefore = count();
    let from = dp.logs.length;
    await put(a.metadata.name, aData);
    await waitLog(from);
    from = dp.logs.length;
    await put(b.metadata.name, bData);
    await waitLog(from);
    assert.equal(count(), loadsBefore, "nothing loaded while the shards disagree with the manifest");
    const manifest = JSON.parse(now.main.data[SHARD_MANIFEST]!) as { shards: Record<string, string> };
    manifest.shards[a.metadata.name] = aData[shardDigestKey(a.metadata.name)]!;
    manifest.shards[b.metadata.name] = bData[shardDigestKey(b.metadata.name)]!;
    await put(MAIN, { ...now.main.data, [SHARD_MANIFEST]: JSON.stringify(manifest) });
    await eventually("the moved pipeline loaded", () => count() > loadsBefore, { timeoutMs: 120_000 });
    const loaded = dp.logs.filter((l) => l.message === "config loaded").slice(loadsBefore);
    assert.deepEqual(
      loaded.map((l) => l.pipelines),
      loaded.map(() => N),
      "every load served every pipeline",
    );
  };
  const waitingLog = (dp: Dataplane) => (from: number) =>
    eventually(
      "the data plane to see the partial set",
      () => dp.logs.slice(from).some((l) => /config shards not all at the manifest's revision/.test(l.message)),
      { timeoutMs: 60_000 },
    );
  await torn(api, "pipeline.push.pl-0007.toml", waitingLog(api));
  assert.equal((await http(url("/p0007/x"))).status, 200);

  // The same on files: a data plane without the API source, fed the projected volume's layout.
  await api.stop();
  const set = await shardsOf();
  const dir = join(tempDir(), "config");
  syncer = startProjectedSyncer(
    (args) => spawn("kubectl", ["--kubeconfig", r.cp.kubeconfig, ...args], { env: r.cp.env }),
    ns,
    [MAIN, ...set.shards.map((s) => s.metadata.name)],
    dir,
  );
  await eventually("the projected files", () => syncer!.swaps() > 0, { timeoutMs: 60_000 });
  fileDp = await startDataplane(join(dir, "config.toml"), {}, [], 15_000 + N * 10);
  const fileCounts = () => fileDp!.logs.filter((l) => l.message === "config loaded").map((l) => l.pipelines);
  assert.deepEqual(fileCounts(), [N]);
  await torn(fileDp, "pipeline.push.pl-0011.toml", waitingLog(fileDp));
  assert.equal((await http(url("/p0011/x"))).status, 200);
});
