"""A C-GET SCU on pynetdicom that offers to receive only in the transfer syntaxes it is given
(Implicit VR Little Endian by default), through the Study Root model. Writes every instance as it
arrived to DIR and prints one JSON line: the final status and the sub-operation counts.
UIDs may be lists (backslash-separated); PATIENT:<id> retrieves a patient through the Patient Root model.
A "|" among the transfer syntaxes starts another presentation context for each SOP class.
Usage: get_scu.py HOST PORT CALLED_AET DIR STUDY[/SERIES[/SOP]]|PATIENT:ID SOP_CLASS[,SOP_CLASS...] [TRANSFER_SYNTAX ...]"""
import json
import os
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)

host, port, called, out, uids, classes = sys.argv[1:7]
groups = [g.split() for g in " ".join(sys.argv[7:] or ["1.2.840.10008.1.2"]).split("|")]
patient = uids[len("PATIENT:") :] if uids.startswith("PATIENT:") else None
study, series, sop = (uids.split("/") + [None, None])[:3] if not patient else (None, None, None)
model = PatientRootQueryRetrieveInformationModelGet if patient else StudyRootQueryRetrieveInformationModelGet


def on_store(event):
    with open(os.path.join(out, f"{event.request.AffectedSOPInstanceUID}.dcm"), "wb") as f:
        f.write(event.encoded_dataset())
    return 0x0000


ae = AE(ae_title="GETSCU")
ae.add_requested_context(model)
roles = []
for c in classes.split(","):
    for syntaxes in groups:
        ae.add_requested_context(c, syntaxes)
    roles.append(build_role(c, scp_role=True))
assoc = ae.associate(host, int(port), ae_title=called, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
if not assoc.is_established:
    print(json.dumps({"associated": False}))
    sys.exit(2)
q = Dataset()
if patient:
    q.QueryRetrieveLevel = "PATIENT"
    q.PatientID = patient
else:
    q.QueryRetrieveLevel = "IMAGE" if sop else "SERIES" if series else "STUDY"
    q.StudyInstanceUID = study
if series:
    q.SeriesInstanceUID = series
if sop:
    q.SOPInstanceUID = sop
def failed_uids(identifier):
    if identifier is None or "FailedSOPInstanceUIDList" not in identifier:
        return None
    v = identifier.FailedSOPInstanceUIDList
    return [str(v)] if isinstance(v, str) else [str(x) for x in v]


result = {"associated": True, "responses": []}
for status, identifier in assoc.send_c_get(q, model):
    if status is None:
        continue
    result["responses"].append(
        {
            "status": int(status.Status),
            "remaining": status.get("NumberOfRemainingSuboperations"),
            "completed": status.get("NumberOfCompletedSuboperations"),
            "failed": status.get("NumberOfFailedSuboperations"),
            "warning": status.get("NumberOfWarningSuboperations"),
            "failedUids": failed_uids(identifier),
        }
    )
assoc.release()
print(json.dumps(result))
