/**
 * `fileOptions`: options that name a file, with the file's content from a ConfigMap key, a Secret
 * key or the resource itself. The content becomes a file beside the config (ConfigMap content and
 * inline content in the rendered ConfigMap; Secret content only ever in the gateway's Secret) and
 * the option is set to its path.
 *
 * Paths are relative to the config directory, where the data plane resolves a relative path (the
 * JOLT `spec_path` resolves from `<config>/transforms`, hence its extra `..`). In a pod that is
 * /etc/harmony/config and /etc/harmony/secrets; a data plane run elsewhere from the same two
 * sibling directories finds the same files.
 */
import { posix } from "node:path";
import type { Static } from "@sinclair/typebox";
import type { FileOption } from "../api/v1alpha1.js";
import { CONFIG_DIR, SECRET_DIR } from "./mounts.js";

export type FileOptionSpec = Static<typeof FileOption>;

/** A ConfigMap's data, and what identifies this revision of it (`<uid>/<resourceVersion>`). */
export interface ConfigMapRevision {
  data: Record<string, string>;
  revision: string;
}
export type ConfigMapLookup = (namespace: string, name: string) => ConfigMapRevision | undefined;

export interface SecretRevision {
  data: Record<string, Buffer>;
  revision: string;
}
export type SecretLookup = (namespace: string, name: string) => SecretRevision | undefined;

/** Options the data plane resolves from the transforms directory instead of the config directory. */
const FROM_TRANSFORMS = new Set(["spec_path"]);

/** Where an option finds a file the operator writes into `dir` under `key`. */
export function mountedPath(option: string, dir: "config" | "secrets", key: string): string {
  const leaf = option.split(".").at(-1)!;
  const base = FROM_TRANSFORMS.has(leaf) ? posix.join(CONFIG_DIR, "transforms") : CONFIG_DIR;
  return posix.relative(base, posix.join(dir === "config" ? CONFIG_DIR : SECRET_DIR, key));
}

/** Sets `a.b.c` in a copy-on-write options table (nested tables are copied, never shared with the CR). */
export function setOption(options: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split(".");
  let t = options;
  for (const part of parts.slice(0, -1)) {
    const cur = t[part];
    const next = cur && typeof cur === "object" && !Array.isArray(cur) ? { ...(cur as Record<string, unknown>) } : {};
    t[part] = next;
    t = next;
  }
  t[parts.at(-1)!] = value;
}

export interface ResolvedFile {
  /** The rendered ConfigMap's key (config) or the gateway Secret's key (secrets). */
  dir: "config" | "secrets";
  key: string;
  content: Buffer;
  /** `<ns>/<name>@<uid>/<resourceVersion>` of the source, or undefined for inline content. */
  revision?: string;
}

export type FileResolution =
  { file: ResolvedFile } | { failure: { condition: "ResolvedRefs" | "Accepted"; reason: string; message: string } };

/** One fileOptions entry: its content and where it goes, or why it cannot be had. */
export function resolveFileOption(
  fo: FileOptionSpec,
  at: string,
  ns: string,
  key: string,
  lookups: { secrets: SecretLookup; configMaps: ConfigMapLookup },
): FileResolution {
  const given = [fo.configMapKeyRef, fo.secretKeyRef, fo.inline].filter((x) => x !== undefined).length;
  if (given !== 1) {
    return {
      failure: {
        condition: "Accepted",
        reason: "InvalidOptions",
        message: `${at}: set exactly one of configMapKeyRef, secretKeyRef and inline`,
      },
    };
  }
  if (fo.secretKeyRef) {
    const found = lookups.secrets(ns, fo.secretKeyRef.name);
    const value = found?.data[fo.secretKeyRef.key];
    if (!value) {
      return {
        failure: {
          condition: "ResolvedRefs",
          reason: "SecretNotFound",
          message: `${at}.secretKeyRef: ${found ? `key "${fo.secretKeyRef.key}" not in` : "no"} Secret ${ns}/${fo.secretKeyRef.name}`,
        },
      };
    }
    return {
      file: { dir: "secrets", key, content: value, revision: `${ns}/${fo.secretKeyRef.name}@${found.revision}` },
    };
  }
  if (/(^|\.)key_path$|_file$/.test(fo.option)) {
    // Secret material never goes into the ConfigMap. The CRD says so too (CEL); this holds where
    // the CRDs are older than the operator.
    return {
      failure: {
        condition: "Accepted",
        reason: "InvalidOptions",
        message: `${at}.${fo.configMapKeyRef ? "configMapKeyRef" : "inline"}: a private key (key_path) or a secret option's file (*_file) must come from a secretKeyRef`,
      },
    };
  }
  if (fo.configMapKeyRef) {
    const found = lookups.configMaps(ns, fo.configMapKeyRef.name);
    const value = found?.data[fo.configMapKeyRef.key];
    if (value === undefined) {
      return {
        failure: {
          condition: "ResolvedRefs",
          reason: "ConfigMapNotFound",
          message: `${at}.configMapKeyRef: ${found ? `key "${fo.configMapKeyRef.key}" not in` : "no"} ConfigMap ${ns}/${fo.configMapKeyRef.name}`,
        },
      };
    }
    return {
      file: {
        dir: "config",
        key,
        content: Buffer.from(value),
        revision: `${ns}/${fo.configMapKeyRef.name}@${found!.revision}`,
      },
    };
  }
  const text = typeof fo.inline === "string" ? fo.inline : JSON.stringify(fo.inline, null, 2) + "\n";
  return { file: { dir: "config", key, content: Buffer.from(text) } };
}

/** [namespace, name] of every ConfigMap the pipelines' fileOptions name, once each. */
export function referencedConfigMaps(
  pipelines: readonly {
    metadata: { namespace?: string };
    spec: { middleware?: { fileOptions?: FileOptionSpec[] }[]; backends: { fileOptions?: FileOptionSpec[] }[] };
  }[],
): [string, string][] {
  const keys = new Set<string>();
  for (const p of pipelines) {
    for (const part of [...(p.spec.middleware ?? []), ...p.spec.backends]) {
      for (const fo of part.fileOptions ?? [])
        if (fo.configMapKeyRef) keys.add(`${p.metadata.namespace}/${fo.configMapKeyRef.name}`);
    }
  }
  return [...keys].sort().map((k) => k.split("/") as [string, string]);
}
