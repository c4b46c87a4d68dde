#!/usr/bin/env bash
# Third-party healthcare peers for the tests: Orthanc with its DICOMweb plugin, dcmtk
# (dcmqrscp, storescp and the SCU tools), dicom3tools (dciodvfy), and sample DICOM files from
# Debian's python3-pydicom, and moto's S3-compatible server (PyPI, in a venv). The FHIR peer is an
# npm package (test/peers/fhir-server.ts). pynetdicom, pydicom and dicomweb-client (PyPI) in a venv.
#
#   peers.sh install     install what is missing (Debian packages; sample files into the cache)
#   peers.sh start       start Orthanc, dcmqrscp and storescp on non-default loopback ports (manual use)
#   peers.sh stop        stop them by PID
#   peers.sh samples     print the directory of the sample .dcm files
#   peers.sh python      print the python that has pynetdicom, pydicom and dicomweb-client
#
# Tests start their own peers on free ports through test/peers/dicom-peers.ts; this script is
# what installs them (make peers, .ci/run) and what a developer runs to poke at them by hand.
set -euo pipefail

CACHE=${HARMONY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/harmony}/peers
SAMPLES=$CACHE/pydicom/test_files
PEERS_DIR=${PEERS_DIR:-$CACHE/run}
ORTHANC_HTTP=${ORTHANC_HTTP:-18042}
ORTHANC_DICOM=${ORTHANC_DICOM:-14242}
QR_PORT=${QR_PORT:-11112}
STORESCP_PORT=${STORESCP_PORT:-11113}
DICOMWEB_PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
MOTO_VERSION=5.2.5
# Independent DICOM implementations in Python: pynetdicom (DIMSE SCU/SCP), pydicom (data sets),
# dicomweb-client (DICOMweb). One venv: $CACHE/dicom-venv/bin/python.
PYNETDICOM_VERSION=3.0.4
PYDICOM_VERSION=3.0.2
DICOMWEB_CLIENT_VERSION=0.61.2

say() { printf 'peers: %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  say "need root to run: $*"; exit 1; fi; }

install() {
  local missing=()
  command -v Orthanc >/dev/null || missing+=(orthanc)
  [ -f "$DICOMWEB_PLUGIN" ] || missing+=(orthanc-dicomweb)
  command -v dcmqrscp >/dev/null || missing+=(dcmtk)
  command -v dciodvfy >/dev/null || missing+=(dicom3tools)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    # policy-rc.d may or may not stop the package from starting a system Orthanc on 8042/4242;
    # the tests never use those ports.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  for t in Orthanc dcmqrscp storescp echoscu findscu movescu getscu storescu dciodvfy; do
    command -v "$t" >/dev/null || { say "$t is still missing after the install"; exit 1; }
  done
  if [ ! -f "$SAMPLES/CT_small.dcm" ]; then
    say "fetching sample DICOM files (Debian python3-pydicom)"
    local tmp; tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download python3-pydicom >/dev/null 2>&1) ||
      { as_root apt-get update -qq && (cd "$tmp" && apt-get download python3-pydicom >/dev/null); }
    dpkg-deb -x "$tmp"/python3-pydicom_*_all.deb "$tmp/x"
    mkdir -p "$CACHE/pydicom"
    rm -rf "$SAMPLES"
    cp -r "$tmp"/x/usr/lib/python3/dist-packages/pydicom/data/test_files "$SAMPLES"
    rm -rf "$tmp"
  fi
  [ -f "$SAMPLES/CT_small.dcm" ] || { say "sample files missing in $SAMPLES"; exit 1; }
  # S3-compatible object storage for the JMIX store tests: moto's server, in a venv of its own.
  if [ ! -x "$CACHE/moto-venv/bin/moto_server" ]; then
    say "installing moto[server] $MOTO_VERSION (PyPI) into $CACHE/moto-venv"
    command -v python3 >/dev/null || { as_root apt-get update -qq && as_root apt-get install -y -qq python3 python3-venv >/dev/null; }
    python3 -m venv "$CACHE/moto-venv" 2>/dev/null ||
      { as_root apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$CACHE/moto-venv"; }
    "$CACHE/moto-venv/bin/pip" install -q "moto[server]==$MOTO_VERSION"
  fi
  [ -x "$CACHE/moto-venv/bin/moto_server" ] || { say "moto_server missing after the install"; exit 1; }
  local dv="$CACHE/dicom-venv" want="pynetdicom==$PYNETDICOM_VERSION pydicom==$PYDICOM_VERSION dicomweb-client==$DICOMWEB_CLIENT_VERSION"
  if [ "$(cat "$dv/.harmony-pins" 2>/dev/null)" != "$want" ]; then
    say "installing $want (PyPI) into $dv"
    python3 -m venv "$dv" 2>/dev/null || { as_root apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$dv"; }
    # shellcheck disable=SC2086
    "$dv/bin/pip" install -q $want
    printf '%s' "$want" > "$dv/.harmony-pins"
  fi
  "$dv/bin/python" -c "import pynetdicom, pydicom, dicomweb_client" || { say "dicom-venv is incomplete"; exit 1; }
  say "ready (samples in $SAMPLES)"
}

wait_for() { local i; for i in $(seq 1 200); do if eval "$1" >/dev/null 2>&1; then return 0; fi; sleep 0.05; done
  say "timeout: $1"; return 1; }

start() {
  stop
  mkdir -p "$PEERS_DIR"/{orthanc-db,qr,storescp-in}
  cat > "$PEERS_DIR/orthanc.json" <<JSON
{ "Name": "HARMONY-PEER", "StorageDirectory": "$PEERS_DIR/orthanc-db", "IndexDirectory": "$PEERS_DIR/orthanc-db",
  "Plugins": ["$DICOMWEB_PLUGIN"], "HttpPort": $ORTHANC_HTTP, "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false, "WebDavEnabled": false, "DicomAet": "ORTHANC", "DicomPort": $ORTHANC_DICOM,
  "DicomCheckCalledAet": false, "DicomAlwaysAllowEcho": true, "DicomAlwaysAllowStore": true,
  "DicomAlwaysAllowFind": true, "DicomAlwaysAllowGet": true, "DicomAlwaysAllowMove": true,
  "UnknownSopClassAccepted": true, "SaveJobs": false,
  "DicomModalities": { "storescp": ["STORESCP", "127.0.0.1", $STORESCP_PORT] },
  "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "EnableWado": true, "WadoRoot": "/wado",
                "Host": "127.0.0.1:$ORTHANC_HTTP", "Ssl": false } }
JSON
  Orthanc "$PEERS_DIR/orthanc.json" > "$PEERS_DIR/orthanc.log" 2>&1 & echo $! > "$PEERS_DIR/orthanc.pid"
  printf 'NetworkTCPPort  = %s\nMaxPDUSize      = 16384\nMaxAssociations = 16\nHostTable BEGIN\nstorescp = (STORESCP, 127.0.0.1, %s)\nHostTable END\nVendorTable BEGIN\nVendorTable END\nAETable BEGIN\nDCMQRSCP  %s  RW  (200, 1024mb)  ANY\nAETable END\n' \
    "$QR_PORT" "$STORESCP_PORT" "$PEERS_DIR/qr" > "$PEERS_DIR/dcmqrscp.cfg"
  dcmqrscp -c "$PEERS_DIR/dcmqrscp.cfg" "$QR_PORT" > "$PEERS_DIR/dcmqrscp.log" 2>&1 & echo $! > "$PEERS_DIR/dcmqrscp.pid"
  storescp -aet STORESCP -od "$PEERS_DIR/storescp-in" "$STORESCP_PORT" > "$PEERS_DIR/storescp.log" 2>&1 &
  echo $! > "$PEERS_DIR/storescp.pid"
  wait_for "curl -sf http://127.0.0.1:$ORTHANC_HTTP/system"
  wait_for "echoscu -aec ORTHANC 127.0.0.1 $ORTHANC_DICOM"
  wait_for "echoscu -aec DCMQRSCP 127.0.0.1 $QR_PORT"
  wait_for "echoscu -aec STORESCP 127.0.0.1 $STORESCP_PORT"
  say "Orthanc http://127.0.0.1:$ORTHANC_HTTP (DICOM ORTHANC@$ORTHANC_DICOM), DCMQRSCP@$QR_PORT, STORESCP@$STORESCP_PORT"
}

stop() {
  local p
  for p in orthanc dcmqrscp storescp; do
    if [ -f "$PEERS_DIR/$p.pid" ]; then kill "$(cat "$PEERS_DIR/$p.pid")" 2>/dev/null || true; rm -f "$PEERS_DIR/$p.pid"; fi
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  samples) echo "$SAMPLES" ;;
  python) echo "$CACHE/dicom-venv/bin/python" ;;
  *) echo "usage: $0 install|start|stop|samples|python" >&2; exit 2 ;;
esac
