"""dicomweb-client, an independent DICOMweb client, against a DICOMweb service: stores FILEs
(STOW-RS), searches for their study (QIDO-RS), retrieves it as stored (`transfer-syntax=*`) and
with dicomweb-client's default (Explicit VR Little Endian), and reads its metadata. Prints one
JSON line: what each step gave, compared with the files by pydicom.
Usage: dicomweb_run.py URL FILE..."""
import json
import sys

import pydicom
from dicomweb_client.api import DICOMwebClient

url, files = sys.argv[1], sys.argv[2:]
sources = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(f) for f in files)}
study = next(iter(sources.values())).StudyInstanceUID
client = DICOMwebClient(url)
out = {}

stored = client.store_instances(datasets=list(sources.values()))
out["stored"] = len(stored.get("ReferencedSOPSequence", []))
out["failed"] = len(stored.get("FailedSOPSequence", []))

found = client.search_for_studies(search_filters={"StudyInstanceUID": study})
out["search"] = [s.get("0020000D", {}).get("Value", [None])[0] for s in found]


def check(instances):
    """Per instance: its transfer syntax, and whether pixel data and every other element match."""
    result = {}
    for ds in instances:
        src = sources[ds.SOPInstanceUID]
        same_elements = all(
            src[tag].value == ds[tag].value
            for tag in src.keys()
            if tag != 0x7FE00010 and not tag.is_private and src[tag].VR != "SQ" and tag in ds
        )
        pixels = None
        if "PixelData" in src:
            a, b = src.file_meta.TransferSyntaxUID, ds.file_meta.TransferSyntaxUID
            pixels = src.PixelData == ds.PixelData if a == b else (src.pixel_array == ds.pixel_array).all().item()
        result[ds.SOPInstanceUID] = {
            "transferSyntax": ds.file_meta.TransferSyntaxUID,
            "elements": same_elements,
            "pixels": pixels,
        }
    return result


out["asStored"] = check(client.retrieve_study(study, media_types=(("application/dicom", "*"),)))
out["default"] = check(client.retrieve_study(study))
metadata = client.retrieve_study_metadata(study)
out["metadata"] = [m.get("00080018", {}).get("Value", [None])[0] for m in metadata]
print(json.dumps(out))
