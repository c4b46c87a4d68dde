/**
 * The Argo CD health check (charts/harmony/argocd/health.lua) run by real Lua interpreters against
 * the cases in its health_test.yaml, the layout Argo CD's own resource_customizations use. Argo CD
 * runs health scripts in gopher-lua, a Lua 5.1, so every case runs under Lua 5.1 and under a
 * current Lua (5.4): a script that only one of them accepts fails here. Argo CD hands the script the
 * object decoded from JSON as the global `obj` and reads `status` and `message` of what it returns.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ROOT, run as runCommand } from "../dataplane/test/helpers.js";

const ARGOCD = join(ROOT, "charts/harmony/argocd");
const SCRIPT = join(ARGOCD, "health.lua");
const INSTALL = join(ROOT, "test/controlplane/lua.sh");

interface Case {
  healthStatus: { status: string; message: string };
  inputPath: string;
}

const run = (cmd: string, args: string[], input = "") => runCommand(cmd, args, { input });

/** Path of an interpreter; lua.sh installs it when missing, so a missing Lua fails rather than skips. */
async function interpreter(which: "lua" | "lua5.1"): Promise<string> {
  const r = await run("bash", [INSTALL, "--print", which]);
  assert.equal(r.code, 0, `bash ${INSTALL} --print ${which} failed:\n${r.stderr}`);
  return r.stdout.trim().split("\n").pop()!;
}

/**
 * A Lua table constructor for a JSON value, as Argo CD builds `obj`: objects become tables keyed by
 * string, arrays 1-based sequences, null is absent. Strings use decimal byte escapes only, which
 * every Lua from 5.1 on reads the same way.
 */
function luaValue(v: unknown): string {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "boolean" || typeof v === "number") return String(v);
  if (typeof v === "string") {
    let out = '"';
    for (const b of Buffer.from(v, "utf8")) {
      out +=
        b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${String(b).padStart(3, "0")}`;
    }
    return out + '"';
  }
  if (Array.isArray(v)) return `{${v.map(luaValue).join(", ")}}`;
  const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== null && x !== undefined);
  return `{${entries.map(([k, x]) => `[${luaValue(k)}] = ${luaValue(x)}`).join(", ")}}`;
}

async function health(lua: string, obj: unknown): Promise<{ status: string; message: string }> {
  // The script runs through dofile as Argo CD runs it: a chunk whose return value is the verdict.
  const driver = [
    `obj = ${luaValue(obj)}`,
    `local hs = dofile(${luaValue(SCRIPT)})`,
    `assert(type(hs) == "table", "health.lua returned " .. type(hs))`,
    `io.write(tostring(hs.status), "\\n", tostring(hs.message))`,
  ].join("\n");
  const r = await run(lua, ["-"], driver);
  assert.equal(r.code, 0, `${lua} failed:\n${r.stderr}`);
  const [status = "", ...message] = r.stdout.split("\n");
  return { status, message: message.join("\n") };
}

const cases = (parse(readFileSync(join(ARGOCD, "health_test.yaml"), "utf8")) as { tests: Case[] }).tests;

test("health_test.yaml covers every verdict for each of the three kinds", () => {
  const seen = new Set<string>();
  for (const c of cases) {
    const obj = parse(readFileSync(join(ARGOCD, c.inputPath), "utf8")) as { kind: string };
    seen.add(`${obj.kind}/${c.healthStatus.status}`);
  }
  for (const kind of ["HarmonyGateway", "HarmonyPipeline", "HarmonyEndpoint"])
    for (const status of ["Healthy", "Progressing", "Degraded"])
      assert.ok(seen.has(`${kind}/${status}`), `no ${status} case for ${kind}`);
});

for (const which of ["lua5.1", "lua"] as const) {
  test(`every case in health_test.yaml under ${which === "lua" ? "Lua 5.4" : "Lua 5.1"}`, async (t) => {
    const lua = await interpreter(which);
    const v = await run(lua, ["-v"]);
    assert.match(v.stdout + v.stderr, which === "lua" ? /Lua 5\.[34]/ : /Lua 5\.1/);
    for (const c of cases) {
      await t.test(c.inputPath, async () => {
        const obj = parse(readFileSync(join(ARGOCD, c.inputPath), "utf8")) as unknown;
        assert.deepEqual(await health(lua, obj), c.healthStatus);
      });
    }
  });
}

test("the Progressing/Degraded boundary follows observedGeneration, whatever Ready says", async () => {
  const lua = await interpreter("lua");
  const base = parse(readFileSync(join(ARGOCD, "testdata/gateway-ready.yaml"), "utf8")) as {
    metadata: { generation: number };
    status: { observedGeneration: number; conditions: { type: string; status: string; reason: string }[] };
  };
  // A spec edit the operator has not seen yet: the old Ready=True must not read as Healthy.
  const stale = structuredClone(base);
  stale.metadata.generation = 4;
  assert.equal((await health(lua, stale)).status, "Progressing");
  // Same generation, Ready flipped to False with a terminal reason: Degraded at once.
  const broken = structuredClone(base);
  const ready = broken.status.conditions.find((c) => c.type === "Ready")!;
  ready.status = "False";
  ready.reason = "NoValidPipelines";
  assert.equal((await health(lua, broken)).status, "Degraded");
  // A Ready=False computed for an older generation is no verdict on the current spec.
  broken.metadata.generation = 4;
  assert.equal((await health(lua, broken)).status, "Progressing");
});

test("a reference not seen yet is Progressing (a first sync's transient), a real failure stays Degraded", async () => {
  // Argo CD fails a sync whose wave holds a Degraded resource when a later wave follows: right after
  // a sync creates endpoints, pipelines and gateways together, the operator reports these reasons
  // for the moment it takes to see all of them.
  const base = parse(readFileSync(join(ARGOCD, "testdata/pipeline-ready.yaml"), "utf8")) as {
    status: { conditions: { type: string; status: string; reason: string; message: string }[] };
  };
  const withReady = (reason: string) => {
    const o = structuredClone(base);
    const ready = o.status.conditions.find((c) => c.type === "Ready")!;
    ready.status = "False";
    ready.reason = reason;
    return o;
  };
  for (const which of ["lua5.1", "lua"] as const) {
    const lua = await interpreter(which);
    for (const reason of ["Unused", "EndpointNotFound", "GatewayNotFound", "WaitingForDataPlane"]) {
      const h = await health(lua, withReady(reason));
      assert.equal(h.status, "Progressing", `${which} ${reason}`);
      assert.match(h.message, new RegExp(`^${reason}: `), "the message still says what is awaited");
    }
    for (const reason of ["InvalidSpec", "InvalidGateway", "UnsupportedValue", "SecretNotFound", "NoValidPipelines"]) {
      assert.equal((await health(lua, withReady(reason))).status, "Degraded", `${which} ${reason}`);
    }
  }
});

test("the argocd-cm snippet in the README is health.lua verbatim, under all three keys", () => {
  const script = readFileSync(SCRIPT, "utf8");
  const readme = readFileSync(join(ARGOCD, "README.md"), "utf8");
  for (const kind of ["HarmonyGateway", "HarmonyEndpoint", "HarmonyPipeline"]) {
    const key = `  resource.customizations.health.harmony.runbeam.io_${kind}: |\n`;
    const at = readme.indexOf(key);
    assert.ok(at >= 0, `README.md has no ${key.trim()}`);
    const lines: string[] = [];
    for (const line of readme.slice(at + key.length).split("\n")) {
      if (line !== "" && !line.startsWith("    ")) break;
      lines.push(line.slice(4));
    }
    assert.equal(lines.join("\n").trimEnd() + "\n", script, `the ${kind} copy differs from health.lua`);
  }
});
