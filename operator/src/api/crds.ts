/** CustomResourceDefinitions built from the schema source in v1alpha1.ts. */
import { GROUP, KINDS as BASE_KINDS, VERSION, type KindInfo } from "./v1alpha1.js";
import { NETWORK_KIND } from "./network.js";

/** Every kind the operator serves: the namespaced three plus the cluster-scoped network. */
export const KINDS: KindInfo[] = [...BASE_KINDS, NETWORK_KIND];

/** Plain JSON (TypeBox's symbols and undefined fields dropped). */
const plain = (v: unknown): Record<string, unknown> => JSON.parse(JSON.stringify(v)) as Record<string, unknown>;

export function crdFor(k: KindInfo): Record<string, unknown> {
  const ready = '.status.conditions[?(@.type=="Ready")]';
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${k.plural}.${GROUP}`,
      labels: { "app.kubernetes.io/part-of": "harmony" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: k.kind,
        listKind: `${k.kind}List`,
        plural: k.plural,
        singular: k.singular,
        shortNames: k.shortNames,
        categories: ["harmony"],
      },
      scope: k.scope ?? "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Ready", type: "string", jsonPath: `${ready}.status`, description: "Ready condition status." },
            { name: "Reason", type: "string", jsonPath: `${ready}.reason`, description: "Ready condition reason." },
            ...k.columns,
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: k.description,
              required: ["spec"],
              properties: {
                apiVersion: { type: "string", description: "API version of this object." },
                kind: { type: "string", description: "Kind of this object." },
                metadata: { type: "object" },
                spec: plain(k.spec),
                status: plain(k.status),
              },
            },
          },
        },
      ],
    },
  };
}

export const allCrds = (): Record<string, unknown>[] => KINDS.map(crdFor);
