"""A C-STORE SCP on pynetdicom that accepts only the transfer syntaxes it is given (an Implicit
VR Little Endian-only peer by default, the standard's baseline, PS3.5 §10.1), and writes each
instance exactly as it arrived (File Meta + the received data set bytes) to DIR, and each
association's proposed presentation contexts, one JSON line per association, to DIR/proposed.jsonl.
--status=0xB000 answers every C-STORE with that status (a PACS that coerces, warns or refuses).
Usage: store_scp.py AET PORT DIR [--status=N] [TRANSFER_SYNTAX ...]"""
import json
import os
import sys

from pynetdicom import AE, StoragePresentationContexts, VerificationPresentationContexts, evt

aet, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rest = sys.argv[4:]
status = 0x0000
if rest and rest[0].startswith("--status="):
    status = int(rest.pop(0).split("=", 1)[1], 0)
syntaxes = rest or ["1.2.840.10008.1.2"]


def on_store(event):
    path = os.path.join(out, f"{event.request.AffectedSOPInstanceUID}.dcm")
    with open(path + ".part", "wb") as f:
        f.write(event.encoded_dataset())
    os.rename(path + ".part", path)  # whole files only: tests wait for the name
    return status


def on_requested(event):
    contexts = [
        {"abstractSyntax": str(cx.abstract_syntax), "transferSyntaxes": [str(t) for t in cx.transfer_syntax]}
        for cx in event.assoc.requestor.requested_contexts
    ]
    with open(os.path.join(out, "proposed.jsonl"), "a") as f:
        f.write(json.dumps(contexts) + "\n")


ae = AE(ae_title=aet)
for cx in StoragePresentationContexts:
    ae.add_supported_context(cx.abstract_syntax, syntaxes)
for cx in VerificationPresentationContexts:
    ae.add_supported_context(cx.abstract_syntax)
print(f"listening on {port}", flush=True)
ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_REQUESTED, on_requested)])
