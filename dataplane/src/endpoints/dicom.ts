/**
 * `dicom` endpoint: a DIMSE SCP (C-ECHO, C-FIND, C-STORE, C-GET, C-MOVE) on its own TCP port and
 * AE title. Each operation runs through the pipeline as the DICOMweb request it stands for
 * (protocols/dimse-scp.ts), so the backend can be a DICOMweb origin (`dicomweb`), another DIMSE
 * peer (`dicom`), or anything else that speaks DICOMweb. Harmony 0.13's `dicom_scp` options
 * (`enable_*`, `aet_table`, `storage_dir`) are read here too.
 */
import { Type, type Static } from "@sinclair/typebox";
import type { BuildContext, EndpointPlugin, OptionProblem } from "../plugins/types.js";
import type { MoveDestination } from "../protocols/dimse-scp-settings.js";
import { lazyModule } from "../lazy-module.js";

// dcmjs-dimse is about 11 MiB of heap (bench/README.md, issue 18): the SCP loads with the first
// dicom endpoint built, not when the data plane starts.
const scp = lazyModule<typeof import("../protocols/dimse-listener.js")>(
  "../protocols/dimse-listener.js",
  import.meta.url,
);

/** DICOM's registered port (PS3.15 / IANA "dicom"), Harmony's `dicom_scp` default. */
const DEFAULT_PORT = 11112;

const AE = { minLength: 1, maxLength: 16, pattern: "^[\\x20-\\x5b\\x5d-\\x7e]*[^ \\\\][\\x20-\\x5b\\x5d-\\x7e]*$" };

const Options = Type.Object(
  {
    port: Type.Integer({
      minimum: 0,
      maximum: 65535,
      default: DEFAULT_PORT,
      description: "TCP port of the DIMSE listener (0: any free port); 11112, DICOM's registered port, as in Harmony.",
    }),
    bind_address: Type.String({ default: "0.0.0.0", description: "Address to listen on." }),
    bind_addr: Type.Optional(
      Type.String({ minLength: 1, description: "Harmony's spelling of bind_address; wins when given." }),
    ),
    local_aet: Type.String({ ...AE, default: "HARMONY", description: "Our AE title (the called AE)." }),
    check_called_aet: Type.Boolean({
      default: true,
      description: "Refuse associations addressed to another AE title.",
    }),
    allowed_aets: Type.Array(Type.String(AE), {
      default: [],
      description: "Calling AE titles allowed to associate; empty allows any.",
    }),
    peers: Type.Record(Type.String(), Type.String({ pattern: "^[^:]+:\\d{1,5}$" }), {
      default: {},
      description: 'C-MOVE destinations: AE title → "host:port".',
    }),
    aet_table: Type.Record(
      Type.String(),
      Type.Object(
        {
          ae_title: Type.Optional(
            Type.String({ ...AE, description: "AE title called on the destination (default: the key)." }),
          ),
          host: Type.String({ minLength: 1 }),
          port: Type.Integer({ minimum: 1, maximum: 65535 }),
        },
        { additionalProperties: false },
      ),
      {
        default: {},
        description:
          "C-MOVE destinations in Harmony's form: Move Destination AE title → { ae_title, host, port }; the same table as `peers`.",
      },
    ),
    enable_echo: Type.Boolean({ default: true, description: "Offer C-ECHO (Verification)." }),
    enable_find: Type.Boolean({ default: true, description: "Offer C-FIND (Query/Retrieve FIND and Worklist)." }),
    enable_get: Type.Boolean({ default: true, description: "Offer C-GET." }),
    enable_move: Type.Boolean({ default: true, description: "Offer C-MOVE." }),
    enable_store: Type.Boolean({
      default: true,
      description:
        "Accept C-STORE. Disabled, storage presentation contexts are rejected, or, while C-GET (which needs them for its sub-operations) is on, each C-STORE is answered 0x0122 (SOP class not supported).",
    }),
    storage_dir: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "Each C-STORE received is also written here, as {StudyInstanceUID}/{SOPInstanceUID}.dcm (Part 10, atomically), before it is relayed; an instance whose UIDs are not plain ([0-9.]{1,64}) or that cannot be written is refused.",
      }),
    ),
    echo: Type.Union([Type.Literal("local"), Type.Literal("upstream")], {
      default: "local",
      description:
        "C-ECHO answered here, or passed on to the backend (a C-ECHO there, an OPTIONS to a DICOMweb origin).",
    }),
    max_pdu: Type.Integer({
      minimum: 4096,
      maximum: 4194304,
      default: 65536,
      description:
        "Largest P-DATA PDU we accept (advertised in the A-ASSOCIATE-AC, at most 262144); a larger one is aborted.",
    }),
    association_timeout_ms: Type.Integer({
      minimum: 1,
      default: 60000,
      description:
        "Idle limit within an association: no PDU in either direction for this long, and it is aborted (A-ABORT).",
    }),
    artim_timeout_ms: Type.Integer({
      minimum: 1,
      default: 30000,
      description:
        "ARTIM timer (PS3.8 9.1.5): a connection whose A-ASSOCIATE-RQ is not complete this long after connecting is closed; also bounds the wait for the peer to close after a reject or release.",
    }),
    association_max_ms: Type.Integer({
      minimum: 0,
      default: 3600000,
      description: "An association's whole life, however busy; then it is aborted. 0: no limit.",
    }),
    max_associations: Type.Integer({
      minimum: 0,
      default: 64,
      description:
        "Connections this listener holds at once (associations and pending requests); beyond it new ones get an A-ASSOCIATE-RJ (transient, local limit exceeded). 0: no cap.",
    }),
    max_associations_per_peer: Type.Integer({
      minimum: 0,
      default: 16,
      description: "The same cap for one peer IP address. 0: no cap.",
    }),
    max_instance_bytes: Type.Integer({
      minimum: 1024,
      default: 1024 * 1024 * 1024,
      description:
        "Largest data set one C-STORE may carry; it is gathered in memory before it is relayed, so a larger one aborts the association.",
    }),
    connect_timeout_ms: Type.Integer({ minimum: 1, default: 5000, description: "For C-MOVE sub-associations." }),
    store_batch_bytes: Type.Integer({
      minimum: 1,
      default: 64 * 1024 * 1024,
      description: "C-MOVE instances per sub-association, by size.",
    }),
    harmony_network: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "Serve DICOM over TLS to peer gateways of this [harmony_networks] entry only (client certificate required and verified; every DIMSE command checked against the directory's policies). Filled in from the network's harmony_network when the endpoint listens on its tcp_config, or is on its own port in a pipeline on a harmony_network listener.",
      }),
    ),
  },
  { additionalProperties: false },
);

function check(o: Static<typeof Options>, ctx: BuildContext): OptionProblem[] {
  const problems: OptionProblem[] = [];
  if (o.harmony_network !== undefined && !ctx.harmonyNetworks().has(o.harmony_network))
    problems.push({ path: ["harmony_network"], message: `harmony network "${o.harmony_network}" is not loaded` });
  for (const [aet, addr] of Object.entries(o.peers)) {
    if (aet.length < 1 || aet.length > 16)
      problems.push({ path: ["peers", aet], message: "AE titles are 1 to 16 characters" });
    const port = Number(addr.split(":").pop());
    if (!(port >= 1 && port <= 65535)) problems.push({ path: ["peers", aet], message: `port ${port} is out of range` });
  }
  for (const aet of Object.keys(o.aet_table)) {
    if (aet.length < 1 || aet.length > 16)
      problems.push({ path: ["aet_table", aet], message: "AE titles are 1 to 16 characters" });
    // One destination, two addresses: which one a C-MOVE reaches would depend on merge order.
    if (aet in o.peers) problems.push({ path: ["aet_table", aet], message: "is also in peers; give it once" });
  }
  return problems;
}

/** `peers` and `aet_table` are two spellings of one table: Move Destination → where and whom to call. */
function destinations(o: Static<typeof Options>): Record<string, MoveDestination> {
  const out = Object.create(null) as Record<string, MoveDestination>;
  for (const [aet, addr] of Object.entries(o.peers)) {
    const i = addr.lastIndexOf(":");
    out[aet] = { host: addr.slice(0, i), port: Number(addr.slice(i + 1)), aet };
  }
  for (const [aet, d] of Object.entries(o.aet_table)) out[aet] = { host: d.host, port: d.port, aet: d.ae_title ?? aet };
  return out;
}

export const dicomEndpoint: EndpointPlugin<typeof Options> = {
  kind: "endpoint",
  type: "dicom",
  aliases: ["dicom_scp", "dimse"],
  ownListener: true,
  // Read from unvalidated options (the port-clash check), where the default is not filled in yet.
  listenPort: (o) => (o as { port?: number }).port ?? DEFAULT_PORT,
  options: Options,
  check,
  create: (o, ctx) => {
    // Keyed by address and port (ports are unique within a config), so a reload that keeps them
    // keeps the bound socket even when the endpoint is renamed; port 0 is any port, one per endpoint.
    const net = o.harmony_network !== undefined ? ctx.harmonyNetworks().get(o.harmony_network) : undefined;
    const tls = net ? { cert: net.cert, key: net.key, ca: net.ca } : undefined;
    const address = o.bind_addr ?? o.bind_address;
    // TLS or not is part of the key: a listener changing mode is a new listener.
    const listener = ctx.resources.acquire(
      `dimse-listener:${tls ? "tls:" : ""}${address}:${o.port}${o.port === 0 ? `:${ctx.name}` : ""}`,
      () => new (scp().DimseListener)(address, o.port, ctx.logger, tls),
    );
    const peers = destinations(o);
    return {
      routes: [],
      listen: () => listener.bind(),
      listening: () => listener.isListening(),
      serve(run) {
        listener.configure(
          {
            aet: o.local_aet,
            allowedAets: o.allowed_aets,
            checkCalledAet: o.check_called_aet,
            peers,
            maxPduLength: o.max_pdu,
            echo: o.echo,
            services: {
              echo: o.enable_echo,
              find: o.enable_find,
              get: o.enable_get,
              move: o.enable_move,
              store: o.enable_store,
            },
            storageDir: o.storage_dir,
            associationTimeoutMs: o.association_timeout_ms,
            artimTimeoutMs: o.artim_timeout_ms,
            associationMaxMs: o.association_max_ms,
            maxAssociations: o.max_associations,
            maxAssociationsPerPeer: o.max_associations_per_peer,
            maxInstanceBytes: o.max_instance_bytes,
            connectTimeoutMs: o.connect_timeout_ms,
            storeBatchBytes: o.store_batch_bytes,
            logger: ctx.logger,
            ...(net ? { network: { net, aet: o.local_aet } } : {}),
          },
          run,
          tls,
        );
      },
    };
  },
};
