"""A query and storage SCP on pynetdicom that records each association's life, for the tests of the
gateway's association pool: one JSON line per event in LOG ({"event": ..., "assoc": N}), with
events open (A-ASSOCIATE-RQ received), released (A-RELEASE), aborted (A-ABORT either way),
rejected (we refused it: --max-associations), closed (connection), find, store, echo, get.
C-FIND answers one match; C-STORE succeeds (nothing is kept); C-GET sends back the --get-file
instance as its sub-operations (twice when --get-abort, aborting after the first).
  --max-associations=N  reject associations beyond N at once (pynetdicom's maximum_associations)
  --find-delay-ms=N     answer each C-FIND after N ms (to keep requests in flight)
  --silent-find         never answer a C-FIND (accept the association, then say nothing)
  --get-file=PATH       the instance a C-GET sends back (without it, C-GET answers no match)
  --get-abort           C-GET announces two sub-operations, sends one, then aborts the association
SIGUSR1 aborts every open association (a PACS restarting, or dropping idle ones its own way).
Usage: pool_scp.py AET PORT LOG [options]"""
import json
import os
import signal
import sys
import threading
import time

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

aet, port, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opts = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "1") for a in sys.argv[4:])
find_delay = int(opts.get("find-delay-ms", "0")) / 1000
silent_find = "silent-find" in opts
get_file = opts.get("get-file")
get_abort = "get-abort" in opts

lock = threading.Lock()
ids = {}


def record(event, assoc):
    with lock:
        n = ids.setdefault(id(assoc), len(ids) + 1)
        with open(log_path, "a") as f:
            f.write(json.dumps({"event": event, "assoc": n}) + "\n")


def on_find(event):
    record("find", event.assoc)
    if silent_find:
        threading.Event().wait(600)
        return
    if find_delay:
        time.sleep(find_delay)
    match = Dataset()
    match.QueryRetrieveLevel = event.identifier.get("QueryRetrieveLevel", "STUDY")
    match.PatientName = "Pool^Test"
    match.PatientID = "POOL1"
    match.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    yield 0xFF00, match


def on_store(event):
    record("store", event.assoc)
    return 0x0000


def on_get(event):
    record("get", event.assoc)
    if not get_file:
        yield 0
        return
    ds = dcmread(get_file)
    yield 2 if get_abort else 1
    yield 0xFF00, ds
    if get_abort:
        event.assoc.abort()
        return


def on_echo(event):
    record("echo", event.assoc)
    return 0x0000


ae = AE(ae_title=aet)
ae.maximum_associations = int(opts.get("max-associations", "10"))
ae.network_timeout = 600  # idle associations are the gateway's to release, not ours
# Both roles accepted: the gateway's C-STOREs (SCU role) and a C-GET's sub-operations (it asks for the SCP role).
for cx in StoragePresentationContexts:
    ae.add_supported_context(
        cx.abstract_syntax, ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"], scu_role=True, scp_role=True
    )
for uid in (
    Verification,
    StudyRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelGet,
):
    ae.add_supported_context(uid, ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])

handlers = [
    (evt.EVT_C_FIND, on_find),
    (evt.EVT_C_STORE, on_store),
    (evt.EVT_C_ECHO, on_echo),
    (evt.EVT_C_GET, on_get),
    (evt.EVT_REQUESTED, lambda e: record("open", e.assoc)),
    (evt.EVT_RELEASED, lambda e: record("released", e.assoc)),
    (evt.EVT_ABORTED, lambda e: record("aborted", e.assoc)),
    (evt.EVT_REJECTED, lambda e: record("rejected", e.assoc)),
    (evt.EVT_CONN_CLOSE, lambda e: record("closed", e.assoc)),
]
server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)


def abort_all(*_):
    for a in server.active_associations:
        a.abort()


signal.signal(signal.SIGUSR1, abort_all)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # a silent handler may be blocked: no clean shutdown
print(f"listening on {port}", flush=True)
while True:
    signal.pause()
