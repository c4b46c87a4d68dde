/** The part of dcmjs (0.51, untyped) that Harmony uses: Part 10 read/write and the data dictionary. */
declare module "dcmjs" {
  /** DICOM JSON model (PS3.18 F.2): tag → { vr, Value | InlineBinary | BulkDataURI }. */
  export type DicomJsonDataset = Record<
    string,
    { vr: string; Value?: unknown[]; InlineBinary?: string; BulkDataURI?: string }
  >;

  export class DicomDict {
    constructor(meta: DicomJsonDataset);
    meta: DicomJsonDataset;
    dict: DicomJsonDataset;
    write(options?: Record<string, unknown>): ArrayBuffer;
  }

  const dcmjs: {
    data: {
      DicomMessage: {
        readFile(buffer: ArrayBuffer, options?: { untilTag?: string; ignoreErrors?: boolean }): DicomDict;
      };
      DicomMetaDictionary: {
        naturalizeDataset(ds: DicomJsonDataset): Record<string, unknown>;
        denaturalizeDataset(ds: Record<string, unknown>): DicomJsonDataset;
        dictionary: Record<string, { tag: string; vr: string; name: string; vm: string; version: string }>;
        nameMap: Record<string, { tag: string; vr: string; name: string }>;
        punctuateTag(rawTag: string): string;
        unpunctuateTag(tag: string): string;
        uid(): string;
      };
      DicomDict: typeof DicomDict;
    };
  };
  export default dcmjs;
}
