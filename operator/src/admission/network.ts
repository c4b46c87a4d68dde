/**
 * Admission checks for HarmonyNetwork that the CRD schema cannot express: rule names unique (a
 * denial names its rule), operation fields that fit their protocol, destinations inside the
 * network's own domain (rules are evaluated at the destination gateway, which is local), and a
 * membership that names someone.
 */
import type { HarmonyNetwork } from "../api/network.js";
import type { SpecIssue } from "../translator/spec-paths.js";

const issue = (path: string, message: string, severity: "error" | "warning" = "error"): SpecIssue => ({
  path,
  message,
  severity,
  secret: false,
  unknownOption: false,
});

/** Which operation fields each protocol may use. */
const FIELDS: Record<string, string[]> = {
  http: ["methods", "paths"],
  dicomweb: ["methods", "paths"],
  fhir: ["methods", "paths", "interactions", "resourceTypes"],
  dicom: ["commands"],
};

export function checkNetwork(net: HarmonyNetwork): SpecIssue[] {
  const out: SpecIssue[] = [];
  const spec = net.spec;
  const orgs = spec.members?.orgs ?? [];
  if (!orgs.length && !Object.keys(spec.members?.namespaceSelector?.matchLabels ?? {}).length)
    out.push(issue("spec.members", "names no org: list orgs or give a namespaceSelector with matchLabels"));
  const seen = new Map<string, number>();
  for (const [i, p] of (spec.policies ?? []).entries()) {
    const at = `spec.policies[${i}]`;
    const first = seen.get(p.name);
    if (first !== undefined)
      out.push(issue(`${at}.name`, `"${p.name}" is already the name of spec.policies[${first}]`));
    else seen.set(p.name, i);
    for (const [j, uri] of (p.destination?.endpoints ?? []).entries()) {
      if (!uri.startsWith(`harmony://${spec.domain}/`))
        out.push(
          issue(
            `${at}.destination.endpoints[${j}]`,
            `${uri} is not in this network's domain ${spec.domain} (rules are enforced at the destination gateway)`,
          ),
        );
    }
    for (const [j, op] of (p.operations ?? []).entries()) {
      const allowed = FIELDS[op.protocol] ?? [];
      for (const f of ["methods", "paths", "interactions", "resourceTypes", "commands"]) {
        if ((op as Record<string, unknown>)[f] !== undefined && !allowed.includes(f))
          out.push(issue(`${at}.operations[${j}].${f}`, `does not apply to protocol ${op.protocol}`));
      }
    }
  }
  for (const [i, e] of (spec.export?.endpoints ?? []).entries()) {
    if (orgs.length && !orgs.includes(e.org) && !spec.members.namespaceSelector)
      out.push(
        issue(`spec.export.endpoints[${i}].org`, `${e.org} is not a member org; nothing is exported`, "warning"),
      );
  }
  out.push(...checkCertManager(spec.ca));
  return out;
}

/**
 * A half-specified issuerRef would make cert-manager report "issuer not found" on every member
 * gateway's Certificate: refused here with the field that is missing instead (the CRD's CEL rule
 * says the same without the webhook). Settings for the mode not chosen are ignored: said so.
 */
function checkCertManager(ca: HarmonyNetwork["spec"]["ca"]): SpecIssue[] {
  const cm = ca?.certManager;
  if (ca?.mode !== "CertManager")
    return cm ? [issue("spec.ca.certManager", "is ignored unless spec.ca.mode is CertManager", "warning")] : [];
  const ref = cm?.issuerRef as Partial<NonNullable<typeof cm>["issuerRef"]> | undefined;
  const missing = ["name", "kind"].filter((k) => !ref?.[k as "name" | "kind"]);
  if (missing.length)
    return [
      issue(
        "spec.ca.certManager.issuerRef",
        `mode CertManager needs issuerRef {name, kind: Issuer|ClusterIssuer}; missing: ${missing.join(", ")}`,
      ),
    ];
  const out: SpecIssue[] = [];
  if (ca.rotation !== undefined || ca.caValidityDays !== undefined)
    out.push(
      issue(
        "spec.ca",
        "rotation and caValidityDays apply to the operator's CA only: with CertManager the issuer's CA is rotated in cert-manager (the operator's own CA then only signs the federation export)",
        "warning",
      ),
    );
  return out;
}
