/** A kubeconfig file for one server and bearer token, trusting one CA, as a pod's client would use it. */
import { writeFileSync } from "node:fs";

export function writeKubeconfig(
  file: string,
  o: { server: string; caPem: string; token: string; namespace?: string },
): string {
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "test",
          cluster: { server: o.server, "certificate-authority-data": Buffer.from(o.caPem).toString("base64") },
        },
      ],
      users: [{ name: "client", user: { token: o.token } }],
      contexts: [
        {
          name: "client",
          context: { cluster: "test", user: "client", ...(o.namespace ? { namespace: o.namespace } : {}) },
        },
      ],
      "current-context": "client",
    }),
    { mode: 0o600 }, // it holds a token
  );
  return file;
}
