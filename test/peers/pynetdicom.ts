/**
 * pynetdicom and pydicom as independent peers: small scripts under test/peers/python/, run with
 * the peers venv's Python (PEER_PYTHON). They stand for the DICOM implementations that follow the
 * standard's defaults most literally (an Implicit VR Little Endian-only SCP, a C-GET SCU that
 * offers one syntax), where Orthanc and dcmtk are lenient.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, tempDir } from "../../dataplane/test/helpers.js";
import { PEER_PYTHON, echo } from "./dicom-peers.js";
import { run, waitFor, type Proc } from "./process.js";

const SCRIPTS = fileURLToPath(new URL("./python/", import.meta.url));
export const IMPLICIT_LE = "1.2.840.10008.1.2";
export const EXPLICIT_LE = "1.2.840.10008.1.2.1";

/** Runs a script to completion; never rejects. */
export function python(script: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(PEER_PYTHON, [join(SCRIPTS, script), ...args]);
    let out = "";
    let err = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    p.on("close", (code) => resolve({ code, out, err }));
  });
}

export interface PyStoreScp extends Proc {
  aet: string;
  port: number;
  dir: string;
  /** The file the SCP wrote for an instance, once it is there. */
  received(sop: string): string | undefined;
  /** The presentation contexts proposed on each association so far, oldest first. */
  proposals(): { abstractSyntax: string; transferSyntaxes: string[] }[][];
}

/** pynetdicom C-STORE SCP accepting only `syntaxes` (Implicit VR Little Endian by default), answering `status`. */
export async function startPyStoreScp(
  aet: string,
  syntaxes: string[] = [IMPLICIT_LE],
  status?: number,
): Promise<PyStoreScp> {
  const dir = tempDir("harmony-pystorescp-");
  const port = await freePort();
  const args = [aet, String(port), dir, ...(status === undefined ? [] : [`--status=${status}`]), ...syntaxes];
  const p = run(PEER_PYTHON, [join(SCRIPTS, "store_scp.py"), ...args], dir);
  await waitFor("pynetdicom store SCP", p, () => echo(aet, port), 30_000);
  return {
    ...p,
    aet,
    port,
    dir,
    received: (sop) => (existsSync(join(dir, `${sop}.dcm`)) ? join(dir, `${sop}.dcm`) : undefined),
    proposals: () =>
      existsSync(join(dir, "proposed.jsonl"))
        ? readFileSync(join(dir, "proposed.jsonl"), "utf8")
            .split("\n")
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { abstractSyntax: string; transferSyntaxes: string[] }[])
        : [],
  };
}

/** pydicom's verdict on two files holding the same data set (see python/same_dataset.py). */
export async function sameDataset(expected: string, actual: string): Promise<{ same: boolean; report: string }> {
  const r = await python("same_dataset.py", [expected, actual]);
  return { same: r.code === 0, report: r.out + r.err };
}

export interface PoolEvent {
  event: "open" | "released" | "aborted" | "rejected" | "closed" | "find" | "store" | "echo" | "get";
  assoc: number;
}

export interface PoolScp extends Proc {
  aet: string;
  port: number;
  /** Every association event so far, oldest first (see python/pool_scp.py). */
  events(): PoolEvent[];
  /** How many of `event` so far. */
  count(event: PoolEvent["event"]): number;
  /** Makes the SCP abort every open association. */
  abortAll(): void;
}

/** pynetdicom query/storage SCP that logs each association's life (python/pool_scp.py). */
export async function startPoolScp(
  aet: string,
  opts: {
    maxAssociations?: number;
    findDelayMs?: number;
    silentFind?: boolean;
    /** The instance a C-GET sends back; `getAbort`: abort after sending it (announcing two). */
    getFile?: string;
    getAbort?: boolean;
  } = {},
): Promise<PoolScp> {
  const dir = tempDir("harmony-poolscp-");
  const log = join(dir, "events.jsonl");
  const port = await freePort();
  const args = [aet, String(port), log];
  if (opts.maxAssociations !== undefined) args.push(`--max-associations=${opts.maxAssociations}`);
  if (opts.findDelayMs !== undefined) args.push(`--find-delay-ms=${opts.findDelayMs}`);
  if (opts.silentFind) args.push("--silent-find");
  if (opts.getFile) args.push(`--get-file=${opts.getFile}`);
  if (opts.getAbort) args.push("--get-abort");
  const p = run(PEER_PYTHON, [join(SCRIPTS, "pool_scp.py"), ...args], dir);
  await waitFor("pynetdicom pool SCP", p, () => echo(aet, port), 30_000);
  const events = (): PoolEvent[] =>
    existsSync(log)
      ? readFileSync(log, "utf8")
          .split("\n")
          .filter(Boolean)
          .map((l) => JSON.parse(l) as PoolEvent)
      : [];
  return {
    ...p,
    aet,
    port,
    events,
    count: (event) => events().filter((e) => e.event === event).length,
    abortAll: () => void p.proc.kill("SIGUSR1"),
  };
}
