"""Compare two DICOM files with pydicom, an independent reader: every element of the two data sets
(File Meta and trailing padding aside) must hold the same value. Public elements are compared as pydicom decodes them;
private ones as their raw bytes (Implicit VR leaves their VR unknown, so decoding would differ).
Prints the differences as JSON lines and a summary; exits 1 when there are any.
Usage: same_dataset.py expected.dcm actual.dcm"""
import json
import sys

import pydicom
from pydicom.dataelem import RawDataElement


SWAP = {"OW": 2, "US": 2, "SS": 2, "OF": 4, "OL": 4, "UL": 4, "SL": 4, "FL": 4, "OD": 8, "FD": 8, "OV": 8}
STRINGS = ("UN", "OB", "LO", "SH", "CS", "LT", "ST", "UT", "DS", "IS", "PN", "DA", "TM", "DT", "UI", "AE", "AS", "UC", "UR")


def little_endian(value, vr):
    """Binary values of a Big Endian file, in little-endian byte order."""
    width = SWAP.get(vr)
    if not width:
        return value
    return b"".join(value[i : i + width][::-1] for i in range(0, len(value) - len(value) % width, width))


def values(ds, little, path=""):
    out = {}
    for tag in ds.keys():
        if tag == 0xFFFCFFFC:
            continue  # Data Set Trailing Padding: no meaning, archives drop it (PS3.10 §7.2)
        key = f"{path}{int(tag):08X}"
        raw = ds.get_item(tag)
        if tag.is_private and isinstance(raw, RawDataElement) and raw.length != 0xFFFFFFFF:
            # Implicit VR has no VR for private data, so its byte order cannot be told either.
            binary = raw.VR not in (None,) + STRINGS
            out[key] = "(binary)" if binary and not BOTH_LITTLE else (raw.value or b"").rstrip(b"\0 ").hex()
            continue
        el = ds[tag]
        if el.VR == "SQ":
            out[key] = len(el.value)
            for i, item in enumerate(el.value):
                out.update(values(item, little, f"{key}[{i}]."))
            continue
        v = el.value
        if v is None:
            v = ""  # an empty value: None or "" depending on the reader's path
        if isinstance(v, bytes):
            v = (v if little else little_endian(v, el.VR)).rstrip(b"\0 ").hex()
        elif isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
            v = [str(x) for x in v]
        else:
            v = str(v)
        out[key] = v
    return out


def load(path):
    ds = pydicom.dcmread(path, force=True)
    little = ds.file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2"
    return values(ds, little)


def is_little(path):
    return pydicom.dcmread(path, force=True, stop_before_pixels=True).file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.2"


BOTH_LITTLE = is_little(sys.argv[1]) and is_little(sys.argv[2])
a, b = load(sys.argv[1]), load(sys.argv[2])
diff = [{"tag": k, "expected": a.get(k), "actual": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
def short(v):
    s = json.dumps(v)
    return s if len(s) <= 120 else s[:100] + f"... ({len(s)} chars)"


for d in diff[:20]:
    print(f'{d["tag"]}: expected {short(d["expected"])}, actual {short(d["actual"])}')
print(json.dumps({"elements": len(a), "differences": len(diff)}))
sys.exit(1 if diff else 0)
