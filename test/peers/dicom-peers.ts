/**
 * DICOM peers for tests, each on free loopback ports and stopped by PID: Orthanc (DICOMweb and
 * DIMSE), dcmtk's dcmqrscp (query/retrieve SCP) and storescp (C-STORE SCP). Installed by
 * test/peers/peers.sh. Orthanc 1.10 cannot choose its bind address, so its DICOM port listens on
 * every interface; tests only ever connect to 127.0.0.1.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { freePort, tempDir } from "../../dataplane/test/helpers.js";
import { run, waitFor, type Proc } from "./process.js";

const PEERS_CACHE = join(
  process.env.HARMONY_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "harmony"),
  "peers",
);
export const SAMPLES = join(PEERS_CACHE, "pydicom/test_files");
/** The Python with pynetdicom, pydicom and dicomweb-client (installed by peers.sh into a venv). */
export const PEER_PYTHON = join(PEERS_CACHE, "dicom-venv/bin/python");

/** Runs one of dcmtk's tools; resolves with its exit code and output (never rejects). */
export function dcmtk(tool: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(tool, args);
    let out = "";
    p.stdout.on("data", (c: Buffer) => (out += c.toString()));
    p.stderr.on("data", (c: Buffer) => (out += c.toString()));
    p.on("error", (e) => resolve({ code: null, out: String(e) }));
    p.on("close", (code) => resolve({ code, out }));
  });
}

/** C-ECHO with dcmtk's echoscu: true when the SCP answered Success. */
export function echo(aet: string, port: number): boolean {
  return spawnSync("echoscu", ["-to", "2", "-aec", aet, "127.0.0.1", String(port)]).status === 0;
}

export interface Orthanc extends Proc {
  http: string;
  dicomweb: string;
  aet: string;
  dicomPort: number;
  dir: string;
}

export async function startOrthanc(
  opts: {
    aet?: string;
    modalities?: Record<string, [string, string, number]>;
    httpPort?: number;
    dicomPort?: number;
    /** Orthanc's --verbose: info lines, among them one per association received. */
    verbose?: boolean;
  } = {},
): Promise<Orthanc> {
  const dir = tempDir("harmony-orthanc-");
  const httpPort = opts.httpPort ?? (await freePort());
  const dicomPort = opts.dicomPort ?? (await freePort());
  const aet = opts.aet ?? "ORTHANC";
  mkdirSync(join(dir, "db"));
  writeFileSync(
    join(dir, "orthanc.json"),
    JSON.stringify({
      Name: "HARMONY-TEST",
      StorageDirectory: join(dir, "db"),
      IndexDirectory: join(dir, "db"),
      Plugins: ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
      HttpPort: httpPort,
      RemoteAccessAllowed: false,
      AuthenticationEnabled: false,
      WebDavEnabled: false,
      DicomAet: aet,
      DicomPort: dicomPort,
      DicomCheckCalledAet: false,
      DicomAlwaysAllowEcho: true,
      DicomAlwaysAllowStore: true,
      DicomAlwaysAllowFind: true,
      DicomAlwaysAllowGet: true,
      DicomAlwaysAllowMove: true,
      UnknownSopClassAccepted: true,
      SaveJobs: false,
      // Large studies in the streaming tests: do not let Orthanc compress or cap them.
      StorageCompression: false,
      MaximumStorageSize: 0,
      DicomModalities: opts.modalities ?? {},
      DicomWeb: {
        Enable: true,
        Root: "/dicom-web/",
        EnableWado: true,
        WadoRoot: "/wado",
        Host: `127.0.0.1:${httpPort}`,
        Ssl: false,
      },
    }),
  );
  const p = run("Orthanc", [...(opts.verbose ? ["--verbose"] : []), join(dir, "orthanc.json")], dir);
  const http = `http://127.0.0.1:${httpPort}`;
  await waitFor("Orthanc", p, async () => (await fetch(`${http}/system`)).ok);
  return { ...p, http, dicomweb: `${http}/dicom-web`, aet, dicomPort, dir };
}

export interface Dcmqrscp extends Proc {
  aet: string;
  port: number;
  dir: string;
}

/** dcmtk's query/retrieve SCP; `hosts` are the C-MOVE destinations it knows, `args` extra options (e.g. `+xr`). */
export async function startDcmqrscp(
  hosts: Record<string, [string, number]> = {},
  args: string[] = [],
): Promise<Dcmqrscp> {
  const dir = tempDir("harmony-dcmqrscp-");
  const port = await freePort();
  mkdirSync(join(dir, "db"));
  const hostLines = Object.entries(hosts).map(([k, [aet, p]]) => `${k} = (${aet}, 127.0.0.1, ${p})`);
  writeFileSync(
    join(dir, "dcmqrscp.cfg"),
    [
      `NetworkTCPPort  = ${port}`,
      "MaxPDUSize      = 16384",
      "MaxAssociations = 16",
      "HostTable BEGIN",
      ...hostLines,
      "HostTable END",
      "VendorTable BEGIN",
      "VendorTable END",
      "AETable BEGIN",
      `DCMQRSCP  ${join(dir, "db")}  RW  (200, 1024mb)  ANY`,
      "AETable END",
      "",
    ].join("\n"),
  );
  const p = run("dcmqrscp", [...args, "-c", join(dir, "dcmqrscp.cfg"), String(port)], dir);
  await waitFor("dcmqrscp", p, () => echo("DCMQRSCP", port));
  return { ...p, aet: "DCMQRSCP", port, dir };
}

export interface StoreScp extends Proc {
  aet: string;
  port: number;
  dir: string;
}

/**
 * dcmtk's C-STORE SCP. `bitPreserving` writes each data set exactly as it arrived on the wire
 * (storescp +B), which makes it the reference for "what did the gateway send".
 */
export async function startStorescp(aet = "STORESCP", fixedPort?: number, bitPreserving = false): Promise<StoreScp> {
  const dir = tempDir("harmony-storescp-");
  const port = fixedPort ?? (await freePort());
  // +xa: accept every transfer syntax storescp knows, compressed ones included.
  const args = ["-aet", aet, "-od", dir, ...(bitPreserving ? ["+B", "+xa"] : []), String(port)];
  const p = run("storescp", args, dir);
  await waitFor("storescp", p, () => echo(aet, port));
  return { ...p, aet, port, dir };
}

export interface Worklist extends Proc {
  aet: string;
  port: number;
}

/** dcmtk's worklist SCP over dcmtk's own example worklist (VIVALDI^ANTONIO and others), AE WLAE. */
export async function startWorklist(): Promise<Worklist> {
  const dir = tempDir("harmony-wlm-");
  const port = await freePort();
  const db = join(dir, "WLAE");
  mkdirSync(db);
  writeFileSync(join(db, "lockfile"), "");
  const examples = "/usr/share/doc/dcmtk/examples/wlistdb/OFFIS";
  for (const n of [1, 2, 3, 4, 5]) {
    const r = spawnSync("dump2dcm", [join(examples, `wklist${n}.dump`), join(db, `wklist${n}.wl`)]);
    if (r.status !== 0) throw new Error(`dump2dcm wklist${n}: ${String(r.stderr)}`);
  }
  const p = run("wlmscpfs", ["-dfp", dir, String(port)], dir);
  await waitFor("wlmscpfs", p, () => echo("WLAE", port));
  return { ...p, aet: "WLAE", port };
}

/**
 * TOML for a pipeline that serves DICOMweb at `prefix` from a DIMSE peer (the `dicom` backend):
 * `[pipelines.<name>]` with `<name>_in` and `<name>_out`. `backendOptions` follow host, port and
 * aet in the backend's options.
 */
export function dicomwebToDimsePipeline(
  name: string,
  prefix: string,
  peer: { port: number; aet: string },
  backendOptions = 'local_aet = "HARMONY"',
): string {
  return `
[pipelines.${name}]
networks = ["default"]
endpoints = ["${name}_in"]
backends = ["${name}_out"]

[endpoints.${name}_in]
service = "dicomweb"
options = { path_prefix = "${prefix}" }

[backends.${name}_out]
service = "dicom"
options = { host = "127.0.0.1", port = ${peer.port}, aet = "${peer.aet}", ${backendOptions} }
`;
}

/**
 * findscu's arguments for a study-level C-FIND (-S) to AE HARMONY on 127.0.0.1:`port`: `flags`
 * first, then one -k for each of `keys`.
 */
export function studyFindArgs(port: number, keys: string[], flags: string[] = []): string[] {
  return [
    ...flags,
    ...["-S", "-aec", "HARMONY", "-k", "QueryRetrieveLevel=STUDY"],
    ...keys.flatMap((k) => ["-k", k]),
    ...["127.0.0.1", String(port)],
  ];
}

/**
 * TOML for `[pipelines.pacs]`: a DIMSE SCP `scp` (AE HARMONY on 127.0.0.1:`port`, then `scpOptions`)
 * in front of `[backends.<backend.name>]`, whose body is `backend.toml`.
 */
export function scpPipeline(port: number, backend: { name: string; toml: string }, scpOptions = ""): string {
  return `
[pipelines.pacs]
endpoints = ["scp"]
backends = ["${backend.name}"]

[endpoints.scp]
service = "dicom"
options = { port = ${port}, bind_address = "127.0.0.1", local_aet = "HARMONY"${scpOptions ? `, ${scpOptions}` : ""} }

[backends.${backend.name}]
${backend.toml}
`;
}

/**
 * TOML for a DIMSE SCP (AE HARMONY on 127.0.0.1:`port`) in front of a DICOMweb origin:
 * `[pipelines.scp_web]`. `moveDestinations` are the C-MOVE destinations (`{ AE: port }` on 127.0.0.1).
 */
export function scpToDicomwebPipeline(
  port: number,
  dicomweb: string,
  moveDestinations: Record<string, number> = {},
): string {
  const peers = Object.entries(moveDestinations).map(([ae, p]) => `${ae} = "127.0.0.1:${p}"`);
  return `
[pipelines.scp_web]
endpoints = ["scp_web"]
backends = ["scp_web_origin"]

[endpoints.scp_web]
service = "dicom"
[endpoints.scp_web.options]
port = ${port}
bind_address = "127.0.0.1"
local_aet = "HARMONY"
${peers.length ? `peers = { ${peers.join(", ")} }` : ""}

[backends.scp_web_origin]
service = "dicomweb"
options = { base_url = "${dicomweb}" }
`;
}
