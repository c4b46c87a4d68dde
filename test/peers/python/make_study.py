"""Puts sample instances into one study of one patient (new Study, Series and SOP Instance UIDs, derived from
NAME), each kept in its own transfer syntax, and writes them to DIR; prints their UIDs as JSON.
Usage: make_study.py NAME DIR FILE..."""
import json
import os
import sys

import pydicom
from pydicom.uid import generate_uid

name, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
prefix = None  # 2.25 UUID-derived UIDs, stable per NAME
study = generate_uid(prefix, [name, "study"])
result = {"study": study, "instances": []}
for i, path in enumerate(files):
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = study
    ds.PatientID = name  # one patient: archives such as Orthanc file studies under patients
    ds.PatientName = name.upper()
    ds.SeriesInstanceUID = generate_uid(prefix, [name, "series", str(i)])
    ds.SOPInstanceUID = generate_uid(prefix, [name, "sop", str(i)])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    target = os.path.join(out, f"{i}.dcm")
    ds.save_as(target, enforce_file_format=True)
    result["instances"].append(
        {
            "file": target,
            "source": os.path.basename(path),
            "series": ds.SeriesInstanceUID,
            "sop": ds.SOPInstanceUID,
            "sopClass": ds.SOPClassUID,
            "transferSyntax": ds.file_meta.TransferSyntaxUID,
        }
    )
print(json.dumps(result))
