#!/usr/bin/env bash
# bench/http-passthrough: HTTP pass-through cost of the Harmony data plane
# against nginx, a direct connection, and Express 5 + http-proxy-middleware 3.
#
#   bash bench/http-passthrough/run.sh
#
# Knobs (environment):
#   ROUNDS=7 DURATION=5 CONNS=64 WARMUP=1     paired rounds, seconds per turn, wrk connections, warm-up s per turn
#   TARGETS="direct nginx harmony express-hpm" subset/order of targets (nginx is the ratio baseline);
#                                              also: floor (node:http + undici, no features),
#                                              floor-raw / floor-rawserver / floor-rawclient (floor-raw.mjs),
#                                              harmony-nolog (harmony with logging.access_log = false),
#                                              harmony-base (HARMONY_BASE_CLI, e.g. an older commit's build),
#                                              harmony-w2 (proxy.workers = 2), nginx-w2 (worker_processes 2),
#                                              harmony-llhttp (harmony with the backend's client = "llhttp",
#                                              the default since issue 18), harmony-undici (client = "undici")
#   SIZES="1k 1m"                              body sizes
#   PROXY_CPU=1 LOAD_CPU=0                     CPU for the proxy under test / for wrk + upstream
#   W2_CPUS=all                                CPUs of the two-worker targets (taskset list; all: every CPU)
#   HARMONY_READY_TIMEOUT=60                   seconds to wait for harmony's /readyz
#   HARMONY_BASE_CLI=<checkout>/dataplane/dist/cli.js  the `harmony-base` target's entry point
#   HARMONY_BASE_NODE_FLAGS (default: HARMONY_NODE_FLAGS)  its node flags
#   HARMONY_BASE_OPTION=""                     a line for its backend's options, e.g. 'client = "llhttp"'
#
# Loopback ports: 19000 upstream, 19001 direct upstream, 19080 nginx,
# 19180 harmony, 19190 harmony management, 19280 express-hpm, 19380 floor, 19480-19482 floor-raw*,
# 19181/19191 harmony-nolog, 19182/19192 harmony-base, 19183/19193 harmony-w2, 19184/19194 harmony-llhttp,
# 19185/19195 harmony-undici,
# 19081 nginx-w2.
#
# This is a benchmark, not a test: PASS/MISS against the project's targets is
# reported, never turned into an exit code. The exit code is non-zero only when
# the harness itself cannot run (missing tools, a target that does not start or
# returns wrong bodies in the preflight).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-1}
TARGETS=${TARGETS:-"direct nginx harmony express-hpm"}
HARMONY_NODE_FLAGS=${HARMONY_NODE_FLAGS-"--max-semi-space-size=2"}
SIZES=${SIZES:-"1k 1m"}
PROXY_CPU=${PROXY_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
HARMONY_READY_TIMEOUT=${HARMONY_READY_TIMEOUT:-60}
HARMONY_CLI=${HARMONY_CLI:-$ROOT/dataplane/dist/cli.js}
HARMONY_BASE_CLI=${HARMONY_BASE_CLI:-}
HARMONY_BASE_NODE_FLAGS=${HARMONY_BASE_NODE_FLAGS-$HARMONY_NODE_FLAGS}
HARMONY_BASE_OPTION=${HARMONY_BASE_OPTION:-}
W2_CPUS=${W2_CPUS:-all}

UPSTREAM_PORT=19000
DIRECT_PORT=19001
NGINX_PORT=19080
HARMONY_PORT=19180
HARMONY_MGMT_PORT=19190
EXPRESS_HPM_PORT=19280
FLOOR_PORT=19380

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
  printf '\n[bench] ERROR: %s\n' "$*" >&2
  exit 1
}
has_target() { [[ " $TARGETS " == *" $1 "* ]]; }

# ------------------------------------------------------------------ checks
for v in ROUNDS DURATION CONNS WARMUP PROXY_CPU LOAD_CPU HARMONY_READY_TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
((ROUNDS >= 1 && DURATION >= 1 && CONNS >= 1)) || die "ROUNDS, DURATION and CONNS must be >= 1"
for t in $TARGETS; do
  case $t in direct | nginx | nginx-w2 | harmony | harmony-nolog | harmony-base | harmony-w2 | harmony-llhttp | harmony-undici | express-hpm | floor | floor-raw | floor-rawserver | floor-rawclient) ;;
    *) die "unknown target '$t' in TARGETS" ;;
  esac
done
for s in $SIZES; do
  case $s in 1k | 1m) ;; *) die "unknown size '$s' in SIZES (1k, 1m)" ;; esac
done
NCPU=$(nproc)
((PROXY_CPU < NCPU && LOAD_CPU < NCPU)) || die "need CPUs $PROXY_CPU and $LOAD_CPU, this box has $NCPU"
((PROXY_CPU != LOAD_CPU)) || log "warning: PROXY_CPU == LOAD_CPU; the proxy shares its core with wrk and the upstream"

# ------------------------------------------------------------------ install
NGINX_BIN=$(command -v nginx || true)
[[ -z $NGINX_BIN && -x /usr/sbin/nginx ]] && NGINX_BIN=/usr/sbin/nginx
if ! command -v wrk >/dev/null || [[ -z $NGINX_BIN ]]; then
  [[ $(id -u) == 0 ]] || die "wrk/nginx missing and not root: apt-get install -y wrk nginx-light"
  log "installing wrk and nginx-light"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y wrk nginx-light
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
fi
for tool in wrk node python3 taskset curl; do
  command -v "$tool" >/dev/null || die "'$tool' not found"
done
[[ -x $NGINX_BIN ]] || die "nginx not found after install"

if has_target harmony-base; then
  [[ -n $HARMONY_BASE_CLI && -f $HARMONY_BASE_CLI ]] ||
    die "harmony-base: set HARMONY_BASE_CLI to a built dataplane/dist/cli.js (see bench/README.md, Baseline)"
fi
if { has_target harmony || has_target harmony-nolog || has_target harmony-w2 || has_target harmony-llhttp ||
  has_target harmony-undici; } && [[ ! -f $HARMONY_CLI ]]; then
  if [[ $HARMONY_CLI == "$ROOT/dataplane/dist/cli.js" ]]; then
    log "building the data plane (npm run build --workspace dataplane)"
    (cd "$ROOT" && npm run build --workspace dataplane) >&2 ||
      die "harmony: 'npm run build --workspace dataplane' failed (run without it: TARGETS=\"direct nginx express-hpm\")"
  fi
  [[ -f $HARMONY_CLI ]] ||
    die "harmony: $HARMONY_CLI does not exist (run without it: TARGETS=\"direct nginx express-hpm\")"
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $UPSTREAM_PORT $DIRECT_PORT $NGINX_PORT $HARMONY_PORT $HARMONY_MGMT_PORT $EXPRESS_HPM_PORT $FLOOR_PORT \
  $((HARMONY_PORT + 1)) $((HARMONY_MGMT_PORT + 1)) $((HARMONY_PORT + 2)) $((HARMONY_MGMT_PORT + 2)) \
  $((HARMONY_PORT + 3)) $((HARMONY_MGMT_PORT + 3)) $((NGINX_PORT + 1)); do
  port_in_use "$p" && die "127.0.0.1:$p is already in use (a previous run still alive?)"
done

# ------------------------------------------------------------------ temp dir + cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/harmony-bench.XXXXXX")
chmod 711 "$WORK" # nginx workers (user nobody) must reach $WORK/nginx/tmp
RESULTS=$WORK/results.jsonl
log "work dir: $WORK"

PIDS=() # every process we start, in start order
NAMES=()

descendants() {
  local c
  for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

cleanup() {
  local rc=$? i pid all=() stopped=() deadline
  trap - EXIT INT TERM
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -0 "$pid" 2>/dev/null || continue
    stopped+=("${NAMES[i]}")
    local tree=("$pid" $(descendants "$pid"))
    all+=("${tree[@]}")
    kill -TERM "${tree[@]}" 2>/dev/null || true
  done
  deadline=$((SECONDS + 10))
  for pid in "${all[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  done
  for pid in "${all[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid did not stop on SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  ((${#all[@]})) && log "stopped ${#all[@]} processes (${stopped[*]} + their children)"
  log "work dir kept: $WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_ready NAME PID URL TIMEOUT_S LOGFILE: poll URL until HTTP 200, bounded.
wait_ready() {
  local name=$1 pid=$2 url=$3 timeout=$4 logfile=$5 tries=$(($4 * 10)) i
  for ((i = 0; i < tries; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$logfile" >&2 || true
      die "$name exited during start-up (log above: $logfile)"
    fi
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
      log "$name ready (pid $pid)"
      return 0
    fi
    sleep 0.1
  done
  tail -n 30 "$logfile" >&2 || true
  die "$name not ready after ${timeout}s: $url (log above: $logfile)"
}

started() { # NAME PID
  PIDS+=("$2")
  NAMES+=("$1:$2")
}

# ------------------------------------------------------------------ start targets
cd "$ROOT"

PORT=$UPSTREAM_PORT taskset -c "$LOAD_CPU" node "$HERE/upstream.mjs" >"$WORK/upstream.log" 2>&1 &
UPSTREAM_PID=$!
started upstream "$UPSTREAM_PID"
wait_ready upstream "$UPSTREAM_PID" "http://127.0.0.1:$UPSTREAM_PORT/1k" 15 "$WORK/upstream.log"

TARGETS_JSON="["
add_target() { # NAME PORT PID
  [[ $TARGETS_JSON == "[" ]] || TARGETS_JSON+=","
  TARGETS_JSON+="{\"name\":\"$1\",\"url\":\"http://127.0.0.1:$2\",\"pid\":$3}"
}

# start_harmony NAME CLI PORT MGMT_PORT ACCESS_LOG NODE_FLAGS [WORKERS CPUS BACKEND_OPTION]: one data plane as a target. Each gets its
# config in a directory of its own: the data plane watches its config for hot reload, and
# nothing else (logs, results) may change next to it.
start_harmony() {
  local name=$1 cli=$2 port=$3 mport=$4 access=$5 flags=$6 workers=${7:-1} cpus=${8:-$PROXY_CPU} option=${9:-} toml pid desc
  mkdir -p "$WORK/$name-config"
  toml=$WORK/$name-config/harmony.toml
  sed -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@HARMONY_PORT@|$port|g" \
    -e "s|@HARMONY_MGMT_PORT@|$mport|g" -e "s|@ACCESS_LOG@|$access|g" -e "s|@WORKERS@|$workers|g" \
    "$HERE/harmony.toml.tmpl" >"$toml"
  # One worker: no line at all, so an older build (harmony-base) reads the config it always did.
  ((workers > 1)) || sed -i '/^workers = /d' "$toml"
  # One more line in the backend's options table (the template's last table).
  [[ -z $option ]] || echo "$option" >>"$toml"
  if ! node "$cli" --config "$toml" --check >"$WORK/$name-check.log" 2>&1; then
    cat "$WORK/$name-check.log" >&2
    die "$name: config check failed: $cli --config $toml --check"
  fi
  # stdout is the JSON access log; stderr is everything else.
  # V8 flags as the data-plane image sets them (docker/dataplane.Dockerfile NODE_OPTIONS).
  NODE_ENV=production taskset -c "$cpus" node $flags "$cli" --config "$toml" \
    >"$WORK/$name-access.log" 2>"$WORK/$name-stderr.log" &
  pid=$!
  started "$name" "$pid"
  log "$name: waiting up to ${HARMONY_READY_TIMEOUT}s for /readyz"
  if ! (wait_ready "$name" "$pid" "http://127.0.0.1:$mport/readyz" \
    "$HARMONY_READY_TIMEOUT" "$WORK/$name-stderr.log"); then
    echo "--- $name stdout (tail) ---" >&2
    tail -n 10 "$WORK/$name-access.log" >&2 || true
    die "$name (the data plane) failed to start: $cli --config $toml"
  fi
  # /readyz is on the management listener; also wait for the data listener.
  wait_ready "$name data listener" "$pid" "http://127.0.0.1:$port/1k" 15 "$WORK/$name-stderr.log"
  # The hash covers every .js of the build, not cli.js alone: two commits often share a cli.js.
  desc="$name [node flags: ${flags:-none}]: $(realpath --relative-to="$ROOT" "$cli") (dist sha256 $(cd "$(dirname "$cli")" &&
    find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-12)), built $(date -u -r "$cli" +%FT%TZ)"
  HARMONY_DESC+="${HARMONY_DESC:+; }$desc"
  add_target "$name" "$port" "$pid"
}

# start_nginx NAME PORT WORKERS CPUS: nginx as a target, its config rendered into $WORK/NAME.
start_nginx() {
  local name=$1 port=$2 workers=$3 cpus=$4 user_line="" pid
  mkdir -p "$WORK/$name/tmp"
  if [[ $(id -u) == 0 ]]; then
    user_line="user nobody nogroup;"
    chown nobody:nogroup "$WORK/$name/tmp"
  fi
  sed -e "s|@WORKDIR@/nginx|$WORK/$name|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
    -e "s|@NGINX_PORT@|$port|g" -e "s|@NGINX_USER_LINE@|$user_line|g" \
    -e "s|^worker_processes 1;|worker_processes $workers;|" \
    "$HERE/nginx.conf.tmpl" >"$WORK/$name/nginx.conf"
  "$NGINX_BIN" -t -q -p "$WORK/$name" -c "$WORK/$name/nginx.conf" -e "$WORK/$name/error.log" ||
    die "$name config test failed ($WORK/$name/nginx.conf)"
  taskset -c "$cpus" "$NGINX_BIN" -p "$WORK/$name" -c "$WORK/$name/nginx.conf" \
    -e "$WORK/$name/error.log" >"$WORK/$name/stdout.log" 2>&1 &
  pid=$!
  started "$name" "$pid"
  wait_ready "$name" "$pid" "http://127.0.0.1:$port/1k" 15 "$WORK/$name/error.log"
  add_target "$name" "$port" "$pid"
}

W2_CPU_LIST=$W2_CPUS
[[ $W2_CPUS == all ]] && W2_CPU_LIST="0-$((NCPU - 1))"

HARMONY_DESC=""
for t in $TARGETS; do
  case $t in
    direct)
      # The `direct` row is wrk straight at an upstream; like the proxies it runs
      # alone on PROXY_CPU (perf-anchors §1.2), so it is a second instance.
      PORT=$DIRECT_PORT taskset -c "$PROXY_CPU" node "$HERE/upstream.mjs" >"$WORK/direct.log" 2>&1 &
      pid=$!
      started direct "$pid"
      wait_ready direct "$pid" "http://127.0.0.1:$DIRECT_PORT/1k" 15 "$WORK/direct.log"
      add_target direct "$DIRECT_PORT" "$pid"
      ;;
    nginx)
      mkdir -p "$WORK/nginx/tmp"
      user_line=""
      if [[ $(id -u) == 0 ]]; then
        user_line="user nobody nogroup;"
        chown nobody:nogroup "$WORK/nginx/tmp"
      fi
      sed -e "s|@WORKDIR@|$WORK|g" -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" \
        -e "s|@NGINX_PORT@|$NGINX_PORT|g" -e "s|@NGINX_USER_LINE@|$user_line|g" \
        "$HERE/nginx.conf.tmpl" >"$WORK/nginx/nginx.conf"
      "$NGINX_BIN" -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" ||
        die "nginx config test failed ($WORK/nginx/nginx.conf)"
      taskset -c "$PROXY_CPU" "$NGINX_BIN" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
        -e "$WORK/nginx/error.log" >"$WORK/nginx/stdout.log" 2>&1 &
      pid=$!
      started nginx "$pid"
      wait_ready nginx "$pid" "http://127.0.0.1:$NGINX_PORT/1k" 15 "$WORK/nginx/error.log"
      add_target nginx "$NGINX_PORT" "$pid"
      ;;
    nginx-w2) start_nginx nginx-w2 $((NGINX_PORT + 1)) 2 "$W2_CPU_LIST" ;;
    harmony) start_harmony harmony "$HARMONY_CLI" "$HARMONY_PORT" "$HARMONY_MGMT_PORT" true "$HARMONY_NODE_FLAGS" ;;
    harmony-nolog)
      start_harmony harmony-nolog "$HARMONY_CLI" $((HARMONY_PORT + 1)) $((HARMONY_MGMT_PORT + 1)) false "$HARMONY_NODE_FLAGS"
      ;;
    harmony-w2)
      start_harmony harmony-w2 "$HARMONY_CLI" $((HARMONY_PORT + 3)) $((HARMONY_MGMT_PORT + 3)) true "$HARMONY_NODE_FLAGS" \
        2 "$W2_CPU_LIST"
      ;;
    harmony-llhttp)
      start_harmony harmony-llhttp "$HARMONY_CLI" $((HARMONY_PORT + 4)) $((HARMONY_MGMT_PORT + 4)) true "$HARMONY_NODE_FLAGS" \
        1 "$PROXY_CPU" 'client = "llhttp"'
      ;;
    harmony-undici)
      start_harmony harmony-undici "$HARMONY_CLI" $((HARMONY_PORT + 5)) $((HARMONY_MGMT_PORT + 5)) true "$HARMONY_NODE_FLAGS" \
        1 "$PROXY_CPU" 'client = "undici"'
      ;;
    harmony-base)
      start_harmony harmony-base "$HARMONY_BASE_CLI" $((HARMONY_PORT + 2)) $((HARMONY_MGMT_PORT + 2)) true \
        "$HARMONY_BASE_NODE_FLAGS" 1 "$PROXY_CPU" "$HARMONY_BASE_OPTION"
      ;;
    floor)
      # The data plane's V8 flags too: with them the gap to harmony is the pipeline's code alone
      # (a 2 MiB young generation alone multiplies a Node proxy's GC time, see bench/README.md).
      NODE_ENV=production PORT=$FLOOR_PORT UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" \
        taskset -c "$PROXY_CPU" node $HARMONY_NODE_FLAGS "$HERE/floor.mjs" >"$WORK/floor.log" 2>&1 &
      pid=$!
      started floor "$pid"
      wait_ready floor "$pid" "http://127.0.0.1:$FLOOR_PORT/1k" 15 "$WORK/floor.log"
      add_target floor "$FLOOR_PORT" "$pid"
      ;;
    floor-raw | floor-rawserver | floor-rawclient)
      # floor-raw.mjs: each side node:http/undici or net + Node's llhttp binding (issue 18's cost split).
      case $t in
        floor-raw) port=$((FLOOR_PORT + 100)) srv=raw cli=raw ;;
        floor-rawserver) port=$((FLOOR_PORT + 101)) srv=raw cli=undici ;;
        floor-rawclient) port=$((FLOOR_PORT + 102)) srv=http cli=raw ;;
      esac
      NODE_ENV=production PORT=$port SERVER=$srv CLIENT=$cli UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" \
        taskset -c "$PROXY_CPU" node $HARMONY_NODE_FLAGS "$HERE/floor-raw.mjs" >"$WORK/$t.log" 2>&1 &
      pid=$!
      started "$t" "$pid"
      wait_ready "$t" "$pid" "http://127.0.0.1:$port/1k" 15 "$WORK/$t.log"
      add_target "$t" "$port" "$pid"
      ;;
    express-hpm)
      NODE_ENV=production PORT=$EXPRESS_HPM_PORT UPSTREAM="http://127.0.0.1:$UPSTREAM_PORT" \
        taskset -c "$PROXY_CPU" node "$HERE/express-hpm.mjs" >"$WORK/express-hpm.log" 2>&1 &
      pid=$!
      started express-hpm "$pid"
      wait_ready express-hpm "$pid" "http://127.0.0.1:$EXPRESS_HPM_PORT/1k" 15 "$WORK/express-hpm.log"
      add_target express-hpm "$EXPRESS_HPM_PORT" "$pid"
      ;;
  esac
done
TARGETS_JSON+="]"

pkgver() { node -p "require('$ROOT/node_modules/$1/package.json').version" 2>/dev/null || echo '?'; }
cat >"$WORK/targets.json" <<EOF
{
  "upstream_url": "http://127.0.0.1:$UPSTREAM_PORT",
  "upstream_port": $UPSTREAM_PORT,
  "upstream_pid": $UPSTREAM_PID,
  "targets": $TARGETS_JSON,
  "meta": {
    "cpus": $NCPU,
    "node": "$(node --version)",
    "nginx": "$("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')",
    "wrk": "$(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')",
    "express": "$(pkgver express)",
    "http_proxy_middleware": "$(pkgver http-proxy-middleware)",
    "undici": "$(pkgver undici)",
    "harmony": "$HARMONY_DESC"
  }
}
EOF

# ------------------------------------------------------------------ measure
log "results (JSON lines): $RESULTS"
# Run in the background and `wait`, so SIGINT/SIGTERM reach the trap at once
# (bash defers traps while a foreground command runs); cleanup stops it by PID.
rc=0
python3 "$HERE/rounds.py" --targets "$WORK/targets.json" --out "$RESULTS" --summary "$WORK/summary.md" \
  --lua "$HERE/report.lua" --rounds "$ROUNDS" --duration "$DURATION" --warmup "$WARMUP" --conns "$CONNS" \
  --sizes "$SIZES" --proxy-cpu "$PROXY_CPU" --load-cpu "$LOAD_CPU" &
started rounds.py $!
wait $! || rc=$?
((rc == 0)) || die "measurement aborted (rounds.py exit $rc)"

for h in harmony harmony-nolog harmony-base harmony-w2 harmony-llhttp; do
  has_target $h || continue
  log "$h access log: $WORK/$h-access.log ($(wc -l <"$WORK/$h-access.log") lines, $(du -h "$WORK/$h-access.log" | cut -f1))"
done
log "summary: $WORK/summary.md"
log "raw per-round results: $RESULTS"
