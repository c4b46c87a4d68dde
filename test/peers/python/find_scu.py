"""A C-FIND SCU on pynetdicom (Study Root unless told otherwise). Each KEY=VALUE becomes an
identifier attribute (VALUE empty: a return key). Prints one JSON line: every response's status
and, for pending ones, the identifier as DICOM JSON (decoded by pydicom, which honours its
SpecificCharacterSet) and the raw SpecificCharacterSet it declared.
Usage: find_scu.py HOST PORT CALLED_AET [--patient-root] KEY=VALUE..."""
import json
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

host, port, called = sys.argv[1:4]
args = sys.argv[4:]
model = StudyRootQueryRetrieveInformationModelFind
if args and args[0] == "--patient-root":
    model = PatientRootQueryRetrieveInformationModelFind
    args = args[1:]
q = Dataset()
for kv in args:
    k, _, v = kv.partition("=")
    setattr(q, k, v)
ae = AE(ae_title="FINDSCU")
ae.add_requested_context(model)
assoc = ae.associate(host, int(port), ae_title=called)
if not assoc.is_established:
    print(json.dumps({"associated": False}))
    sys.exit(2)
out = {"associated": True, "responses": []}
for status, identifier in assoc.send_c_find(q, model):
    if status is None:
        continue
    r = {"status": int(status.Status)}
    if identifier is not None:
        r["charset"] = identifier.get("SpecificCharacterSet")
        r["identifier"] = identifier.to_json_dict()
    out["responses"].append(r)
assoc.release()
print(json.dumps(out, default=str))
