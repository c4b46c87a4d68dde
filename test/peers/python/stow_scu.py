"""dicomweb-client, an independent DICOMweb client, stores FILEs with one STOW-RS request and prints
one JSON line: the SOP Instance UIDs the response references, and how many it lists as failed.
Usage: stow_scu.py URL FILE..."""
import json
import sys

import pydicom
from dicomweb_client.api import DICOMwebClient

url, files = sys.argv[1], sys.argv[2:]
client = DICOMwebClient(url)
stored = client.store_instances(datasets=[pydicom.dcmread(f) for f in files])
refs = stored.get("ReferencedSOPSequence", [])
print(
    json.dumps(
        {
            "stored": [r.ReferencedSOPInstanceUID for r in refs],
            "urls": [str(r.get("RetrieveURL", "")) for r in refs],
            "failed": len(stored.get("FailedSOPSequence", [])),
        }
    )
)
