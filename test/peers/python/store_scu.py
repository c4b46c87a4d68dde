"""A C-STORE SCU on pynetdicom that proposes each file's SOP class in Implicit VR Little Endian only
(the standard's default, what the strictest peers send) and prints one JSON line: the status of
each C-STORE, by SOP Instance UID.
Usage: store_scu.py HOST PORT CALLED_AET FILE..."""
import json
import sys

import pydicom
from pynetdicom import AE

host, port, called, files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
datasets = [pydicom.dcmread(f) for f in files]
ae = AE(ae_title="PYSTORESCU")
for c in {ds.SOPClassUID for ds in datasets}:
    ae.add_requested_context(c, "1.2.840.10008.1.2")
assoc = ae.associate(host, port, ae_title=called)
if not assoc.is_established:
    print(json.dumps({"associated": False}))
    sys.exit(1)
statuses = {}
for ds in datasets:
    rsp = assoc.send_c_store(ds)
    statuses[ds.SOPInstanceUID] = rsp.Status if rsp else None
assoc.release()
print(json.dumps({"associated": True, "statuses": statuses}))
