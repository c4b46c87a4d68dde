/**
 * Harmony 0.13's spellings of `dicom` (`dicom_scu`) backend options. Two have a meaning here and
 * map onto this build's own options; the rest describe Harmony's DCMTK-based store SCP, which this
 * build does not run, and are accepted with a warning so a published config still loads. DICOM
 * TLS asked for is an error instead: connecting in clear text would be a silent downgrade (the
 * same rule as a dicom target's `tls.enabled`, config/connections.ts).
 */
import { Type } from "@sinclair/typebox";
import type { OptionProblem } from "../plugins/types.js";

/** Harmony's default `incoming_store_port` (its movescu `+P`), used when a config says only `dimse_retrieve_mode`. */
const HARMONY_STORE_PORT = 11123;

const ignored = (description: string) => Type.Optional(Type.Boolean({ description: `Harmony 0.13; ${description}` }));

export const harmonyOptions = {
  dimse_retrieve_mode: Type.Optional(
    Type.Union([Type.Literal("get"), Type.Literal("move")], {
      description: "Harmony 0.13's name for `retrieve`; when given it wins.",
    }),
  ),
  incoming_store_port: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 65535,
      description: `Harmony 0.13's name for \`move_port\` (\`move_port\` wins); with \`dimse_retrieve_mode = "move"\` and neither given, ${HARMONY_STORE_PORT}.`,
    }),
  ),
  use_tls: ignored("true is refused: DICOM TLS is not available in this build."),
  persistent_store_scp: ignored(
    "not used by this build: the C-MOVE receiver lives as long as the backend whenever retrieve is move.",
  ),
  storage_dir: Type.Optional(
    Type.String({ description: "Harmony 0.13; not used by this build: retrieved instances are streamed, not kept." }),
  ),
  enable_echo: ignored("not used by this build (options of Harmony's backend store SCP)."),
  enable_find: ignored("not used by this build (options of Harmony's backend store SCP)."),
  enable_get: ignored("not used by this build (options of Harmony's backend store SCP)."),
  enable_move: ignored("not used by this build (options of Harmony's backend store SCP)."),
};

interface Given {
  retrieve: "get" | "move";
  move_port?: number;
  dimse_retrieve_mode?: "get" | "move";
  incoming_store_port?: number;
  use_tls?: boolean;
  persistent_store_scp?: boolean;
  storage_dir?: string;
  enable_echo?: boolean;
  enable_find?: boolean;
  enable_get?: boolean;
  enable_move?: boolean;
}

/** How the backend retrieves and where its C-MOVE receiver listens, Harmony's spellings folded in. */
export function retrieval(o: Given): { retrieve: "get" | "move"; movePort: number | undefined } {
  const retrieve = o.dimse_retrieve_mode ?? o.retrieve;
  const movePort =
    o.move_port ?? o.incoming_store_port ?? (o.dimse_retrieve_mode === "move" ? HARMONY_STORE_PORT : undefined);
  return { retrieve, movePort };
}

/** One problem per Harmony option given that this build does not act on. */
export function harmonyProblems(o: Given): OptionProblem[] {
  const out: OptionProblem[] = [];
  if (o.use_tls === true)
    out.push({
      path: ["use_tls"],
      message: "DICOM TLS is not available in this build; refusing to connect in clear text",
    });
  if (o.persistent_store_scp !== undefined)
    out.push({
      path: ["persistent_store_scp"],
      message: 'not used by this build: with retrieve = "move" the C-MOVE receiver runs as long as the backend',
      severity: "warning",
    });
  if (o.storage_dir !== undefined)
    out.push({
      path: ["storage_dir"],
      message: "not used by this build: retrieved instances are streamed to the client, not kept on disk",
      severity: "warning",
    });
  const scp = (["enable_echo", "enable_find", "enable_get", "enable_move"] as const).filter((k) => o[k] !== undefined);
  if (scp.length > 0)
    out.push({
      path: [scp[0]!],
      message: `${scp.join(", ")} not used by this build: there is no store SCP on a backend (the C-MOVE receiver takes C-STORE only); a dicom endpoint offers these services`,
      severity: "warning",
    });
  return out;
}
