"""Writes one instance derived from a sample with the given attributes set (KEY=VALUE; VALUE as
DICOM writes it, backslashes separating values; KEY=@hex:... for raw bytes of a string element),
in the sample's transfer syntax, new UIDs derived from NAME. Prints its UIDs as JSON.
Usage: make_instance.py NAME SAMPLE OUT KEY=VALUE..."""
import json
import sys

import pydicom
from pydicom.uid import generate_uid

name, sample, out = sys.argv[1:4]
ds = pydicom.dcmread(sample)
ds.StudyInstanceUID = generate_uid(None, [name, "study"])
ds.SeriesInstanceUID = generate_uid(None, [name, "series"])
ds.SOPInstanceUID = generate_uid(None, [name, "sop"])
ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
for kv in sys.argv[4:]:
    k, _, v = kv.partition("=")
    if v.startswith("@hex:"):
        # Raw bytes (already in the data set's character set): set without pydicom re-encoding.
        tag = pydicom.datadict.tag_for_keyword(k)
        vr = pydicom.datadict.dictionary_VR(tag)
        ds.add(pydicom.dataelem.RawDataElement(pydicom.tag.Tag(tag), vr, len(bytes.fromhex(v[5:])), bytes.fromhex(v[5:]), 0, False, True))
    else:
        setattr(ds, k, v.split("\\") if "\\" in v else v)
ds.save_as(out, enforce_file_format=True)
print(json.dumps({"study": ds.StudyInstanceUID, "series": ds.SeriesInstanceUID, "sop": ds.SOPInstanceUID}))
