/**
 * Secret-valued options. Each can be written inline (`name`), read from a file (`name_file`, the
 * way Kubernetes mounts a Secret) or from an environment variable (`name_env`). Values are read
 * when the config is loaded, so a missing file is a config error, not a failure at request time;
 * /admin/config shows the reference, never the value.
 */
import { Type, type TSchema } from "@sinclair/typebox";
import type { BuildContext, OptionProblem } from "./types.js";

export function secretProps<N extends string>(
  name: N,
  description: string,
): Record<N | `${N}_file` | `${N}_env`, TSchema> {
  return {
    [name]: Type.Optional(Type.String({ description: `${description} (inline; prefer ${name}_file or ${name}_env)` })),
    [`${name}_file`]: Type.Optional(Type.String({ description: `File holding ${description.toLowerCase()}.` })),
    [`${name}_env`]: Type.Optional(
      Type.String({ description: `Environment variable holding ${description.toLowerCase()}.` }),
    ),
  } as unknown as Record<N | `${N}_file` | `${N}_env`, TSchema>;
}

/** The secret's value, or a problem saying why it cannot be had. Undefined when none was given. */
export function readSecret(
  o: Record<string, unknown>,
  name: string,
  ctx: BuildContext,
): { value: string | undefined; problems: OptionProblem[] } {
  const inline = o[name];
  const file = o[`${name}_file`];
  const env = o[`${name}_env`];
  const given = [inline, file, env].filter((v) => v !== undefined).length;
  if (given > 1)
    return {
      value: undefined,
      problems: [{ path: [name], message: `give one of ${name}, ${name}_file, ${name}_env` }],
    };
  if (typeof file === "string") {
    try {
      // A trailing newline is how most tools write a secret file; it is not part of the secret.
      return {
        value: ctx
          .readFile(file)
          .toString("utf8")
          .replace(/\r?\n$/, ""),
        problems: [],
      };
    } catch (e) {
      return {
        value: undefined,
        problems: [
          { path: [`${name}_file`], message: `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}` },
        ],
      };
    }
  }
  if (typeof env === "string") {
    const v = process.env[env];
    if (v === undefined || v === "")
      return {
        value: undefined,
        problems: [{ path: [`${name}_env`], message: `environment variable ${env} is not set` }],
      };
    return { value: v, problems: [] };
  }
  return { value: typeof inline === "string" ? inline : undefined, problems: [] };
}
