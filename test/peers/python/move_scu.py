"""A C-MOVE SCU on pynetdicom (Study Root) that moves STUDY to DEST and prints one JSON line:
every response's status, sub-operation counts (Remaining included) and Failed SOP Instance UID List.
Usage: move_scu.py HOST PORT CALLED_AET DEST STUDY"""
import json
import sys

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

host, port, called, dest, study = sys.argv[1:6]
ae = AE(ae_title="MOVESCU")
ae.add_requested_context(MOVE)
assoc = ae.associate(host, int(port), ae_title=called)
if not assoc.is_established:
    print(json.dumps({"associated": False}))
    sys.exit(2)
q = Dataset()
q.QueryRetrieveLevel = "STUDY"
q.StudyInstanceUID = study


def failed_uids(identifier):
    if identifier is None or "FailedSOPInstanceUIDList" not in identifier:
        return None
    v = identifier.FailedSOPInstanceUIDList
    return [str(v)] if isinstance(v, str) else [str(x) for x in v]


result = {"associated": True, "responses": []}
for status, identifier in assoc.send_c_move(q, dest, MOVE):
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
