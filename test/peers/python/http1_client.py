"""HTTP/1.1 client peers for the server-lane comparison (test/hostile/http1-server-peers.test.ts).

usage: http1_client.py <port> <client> <requests.json>
client: "http.client" (one HTTPConnection reused for every request) or "requests" (one Session).
Prints one JSON line per request: status, reason, the headers that matter, body length and hash,
and the client-side port of the connection it went on (to count the connections used).
"""
import hashlib
import http.client
import json
import re
import sys

# Request ids differ per request (and so per server): masked in bodies (problem+json's "instance").
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

KEEP = ("content-length", "transfer-encoding", "content-type", "connection", "etag", "x-up", "x-up-body-bytes")


def summary(status, reason, headers, body, local_port):
    h = {k.lower(): v for k, v in headers}
    return {
        "status": status,
        "reason": reason,
        "headers": {k: h[k] for k in KEEP if k in h},
        "request_id": "x-request-id" in h,
        "body_len": len(body),
        "body_sha": hashlib.sha256(UUID.sub(b"<uuid>", body)).hexdigest()[:16],
        "local_port": local_port,
    }


def with_http_client(port, reqs):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for r in reqs:
        try:
            conn.request(r["method"], r["path"], body=r.get("body"), headers=r.get("headers", {}))
            local = conn.sock.getsockname()[1]
            res = conn.getresponse()
            body = res.read()
            print(json.dumps(summary(res.status, res.reason, res.getheaders(), body, local)), flush=True)
        except Exception as e:  # a failure is a result to compare, not a crash
            print(json.dumps({"error": type(e).__name__}), flush=True)
            conn.close()


def with_requests(port, reqs):
    import requests

    s = requests.Session()
    for r in reqs:
        try:
            res = s.request(
                r["method"], f"http://127.0.0.1:{port}{r['path']}", data=r.get("body"),
                headers=r.get("headers", {}), timeout=10, stream=True, allow_redirects=False,
            )
            sock = res.raw._connection.sock if res.raw._connection and res.raw._connection.sock else None
            local = sock.getsockname()[1] if sock else 0
            body = res.raw.read(decode_content=False)
            print(json.dumps(summary(res.status_code, res.reason, list(res.raw.headers.items()), body, local)), flush=True)
            res.close()
        except Exception as e:
            print(json.dumps({"error": type(e).__name__}), flush=True)


if __name__ == "__main__":
    port, client, spec = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    with open(spec) as f:
        reqs = json.load(f)
    (with_http_client if client == "http.client" else with_requests)(port, reqs)
