/**
 * A self-signed P-256 certificate for 127.0.0.1 (CN dp.test), made with openssl into a fresh
 * directory: what the hostile tests' TLS listeners serve. Clients skip verification.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { tempDir } from "../../dataplane/test/helpers.js";

export function selfSignedCert(prefix = "harmony-hostile-tls-"): { cert: string; key: string } {
  const dir = tempDir(prefix);
  const r = spawnSync(
    "bash",
    [
      "-c",
      `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=dp.test" ` +
        `-addext "subjectAltName=IP:127.0.0.1" -keyout dp.key -out dp.crt 2>&1`,
    ],
    { cwd: dir, encoding: "utf8" },
  );
  if (r.status !== 0) throw new Error(r.stdout);
  return { cert: join(dir, "dp.crt"), key: join(dir, "dp.key") };
}
