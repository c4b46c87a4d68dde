#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, and its complete removal. Used by
# test/cluster/cluster.ts; also by hand:
#
#   bash test/cluster/node.sh up [<owner pid>] [<image archive>...]   start it (prints the state dir)
#   bash test/cluster/node.sh down                                     remove everything it changed
#
# One cluster per machine: state in $HARMONY_NODE_STATE (/tmp/harmony-node). `up` refuses while the
# owner process (default: the caller's parent) is alive, and first runs `down` for a dead owner's
# leftovers. The node is the bridge harmonybr0 (10.244.0.1/24): the apiserver, kubelet, CoreDNS and
# NodePorts listen on that IP, everything else on 127.0.0.1 (dynamic ports); pod traffic cannot leave
# the bridge (a FORWARD guard rule), and pods resolve through CoreDNS on the bridge, which knows only
# cluster.local (nothing is forwarded). The pitfalls handled are those of
# /work/shared/reference/real-node.md (restrict_oom_score_adj, cgroupfs, InternalIP, resolvConf, ...).
#
# `down` restores what `up` saved: every sysctl under vm., kernel.panic*, net.ipv4/6 all/default,
# net.netfilter. and net.bridge. that changed, the iptables and ip6tables rulesets (the kubelet and
# kube-proxy add chains that `kube-proxy --cleanup` leaves), and removes the bridge, network
# namespaces, mounts and kubepods cgroups that appeared. Binaries: test/cluster/build.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${HARMONY_NODE_STATE:-/tmp/harmony-node}
BR=harmonybr0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/16
NODE_NAME=harmony-node
log() { printf '[node %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[node] ERROR: %s\n' "$*" >&2; exit 1; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
freeport() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
SYSCTL_KEEP='^(vm\.|kernel\.panic|kernel\.keys\.|net\.ipv4\.ip_forward|net\.ipv4\.conf\.(all|default)\.|net\.ipv6\.conf\.(all|default)\.|net\.netfilter\.|net\.bridge\.)'
snapshot_sysctls() { sysctl -a 2>/dev/null | grep -E "$SYSCTL_KEEP" | grep -v nf_conntrack_count | sort || true; }

# ---------------------------------------------------------------------------------------------------
down() {
  [ -d "$STATE" ] || return 0
  log "tearing down $STATE"
  local bin=$STATE/bin kc=$STATE/kubeconfig
  # 1. Pods go while the kubelet still runs, so CNI DEL and unmounts happen; cordon first, or the
  #    controllers recreate them during shutdown.
  if [ -f "$STATE/pids/kubelet" ] && alive "$(cat "$STATE/pids/kubelet")" && alive "$(cat "$STATE/pids/kube-apiserver" 2>/dev/null)"; then
    local k=("$bin/kubectl" --kubeconfig "$kc" --request-timeout=20s)
    log "cordon, delete every pod"
    "${k[@]}" cordon "$NODE_NAME" >/dev/null 2>&1 || true
    "${k[@]}" delete mutatingwebhookconfigurations,validatingwebhookconfigurations --all --wait=false >/dev/null 2>&1 || true
    "${k[@]}" delete deployments,statefulsets,daemonsets,replicasets,jobs --all -A --wait=false >/dev/null 2>&1 || true
    "${k[@]}" delete pods --all -A --grace-period=2 --timeout=60s >/dev/null 2>&1 || true
    local i
    # stopped sandboxes stay listed (their network is already torn down): wait for no RUNNING task
    for i in $(seq 1 40); do
      ctr_ -n k8s.io tasks ls 2>/dev/null | awk '$3 == "RUNNING"' | grep -q . || break
      sleep 0.5
    done
  fi
  # 2. Processes by PID, dependents first.
  log "stopping processes"
  local p pid
  for p in kube-proxy kubelet kube-scheduler kube-controller-manager coredns kube-apiserver etcd; do
    pid=$(cat "$STATE/pids/$p" 2>/dev/null || true)
    alive "$pid" || continue
    kill -TERM "$pid" 2>/dev/null || true
    # 5 s each: their state is thrown away, a slow graceful shutdown buys nothing
    for i in $(seq 1 25); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  done
  # 3. Whatever containers remain (a kubelet that died first): kill their tasks through containerd.
  pid=$(cat "$STATE/pids/containerd" 2>/dev/null || true)
  if alive "$pid"; then
    local c
    for c in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do ctr_ -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done
    sleep 0.5
    for c in $(ctr_ -n k8s.io tasks ls -q 2>/dev/null); do ctr_ -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true; done
    for c in $(ctr_ -n k8s.io containers ls -q 2>/dev/null); do ctr_ -n k8s.io containers delete "$c" >/dev/null 2>&1 || true; done
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  fi
  # shims outlive containerd; ours run with our state dir on their command line
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $STATE/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  # 4. Mounts, network namespaces, veths and the bridge that appeared.
  log "restoring the host"
  local m
  for m in $(awk '{print $2}' /proc/self/mounts | grep -E "^($STATE|/run/netns|/var/run/netns|$CD_ROOT)/" | sort -r || true); do
    grep -qxF "$m" "$STATE/saved/mounts" 2>/dev/null && continue
    umount -l "$m" 2>/dev/null || true
  done
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    grep -qxF "$ns" "$STATE/saved/netns" 2>/dev/null || ip netns delete "$ns" 2>/dev/null || true
  done
  for m in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    grep -qxF "$m" "$STATE/saved/veths" 2>/dev/null || ip link delete "$m" 2>/dev/null || true
  done
  if [ -x "$bin/kube-proxy" ]; then "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  ip link delete "$BR" 2>/dev/null || true
  # 5. iptables and ip6tables exactly as saved: flush and drop every chain, then restore.
  local fam t
  for fam in iptables ip6tables; do
    [ -f "$STATE/saved/$fam" ] || continue
    for t in filter nat mangle raw security; do
      "$fam" -t "$t" -F 2>/dev/null || true
      "$fam" -t "$t" -X 2>/dev/null || true
      for c in INPUT FORWARD OUTPUT PREROUTING POSTROUTING; do "$fam" -t "$t" -P "$c" ACCEPT 2>/dev/null || true; done
    done
    "$fam-restore" <"$STATE/saved/$fam" || log "WARNING: $fam-restore failed"
    # iptables-nft leaves the (now empty) tables it created; drop those that were not there before
    local nfam=ip
    [ "$fam" = iptables ] || nfam=ip6
    for t in filter nat mangle raw security; do
      grep -qx "\*$t" "$STATE/saved/$fam" || nft delete table "$nfam" "$t" 2>/dev/null || true
    done
  done
  # 6. sysctls that differ from the snapshot.
  if [ -f "$STATE/saved/sysctl" ]; then
    join -t= -j1 <(sed 's/ = /=/' "$STATE/saved/sysctl") <(snapshot_sysctls | sed 's/ = /=/') | awk -F= '$2 != $3 {print $1"="$2}' |
      while IFS= read -r kv; do
        log "restoring sysctl $kv"
        sysctl -q -w "$kv" >/dev/null 2>&1 || log "WARNING: could not restore $kv"
      done
  fi
  # 7. The kubelet's cgroups (cgroupfs driver, cgroup v1): deepest first.
  find /sys/fs/cgroup -mindepth 2 -depth -type d -path '*/kubepods*' -exec rmdir {} \; 2>/dev/null || true
  rm -rf /var/lib/cni/networks/harmony /var/lib/cni/results/harmony-* 2>/dev/null || true
  rm -rf "$STATE"
  log "down"
}
CD_ROOT=${HARMONY_CACHE:-$HOME/.cache/harmony}/cluster/containerd
ctr_() { ctr --address "$STATE/containerd.sock" "$@"; }

# ---------------------------------------------------------------------------------------------------
up() {
  local owner=${1:-$PPID}
  shift || true
  [ "$(id -u)" = 0 ] || die "needs root"
  if [ -d "$STATE" ]; then
    local prev
    prev=$(cat "$STATE/owner" 2>/dev/null || true)
    if alive "$prev"; then die "a cluster owned by PID $prev runs ($STATE); one per machine"; fi
    down
  fi
  ip link show "$BR" >/dev/null 2>&1 && die "$BR exists but no $STATE: remove it by hand (ip link delete $BR)"
  local t0=$SECONDS cache
  cache=$(bash "$ROOT/test/cluster/build.sh" --print-dir)
  mkdir -p "$STATE"/{pids,saved,logs,pki,cni/net.d,kubelet,cd-state,etcd} "$CD_ROOT"
  echo "$owner" >"$STATE/owner"
  ln -sfn "$cache/bin" "$STATE/bin"
  local bin=$STATE/bin KUBECTL=$STATE/bin/kubectl
  # From here on a failure removes whatever was set up.
  trap 'log "up failed; tearing down"; down' EXIT

  # ---- save, then change the host ----
  snapshot_sysctls >"$STATE/saved/sysctl"
  iptables-save >"$STATE/saved/iptables"
  ip6tables-save >"$STATE/saved/ip6tables"
  ip netns list 2>/dev/null | awk '{print $1}' >"$STATE/saved/netns" || true
  ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 >"$STATE/saved/veths" || true
  awk '{print $2}' /proc/self/mounts >"$STATE/saved/mounts"
  ip link add "$BR" type bridge
  ip addr add "$NODE_IP/24" dev "$BR"
  ip link set "$BR" up
  sysctl -q -w net.ipv4.ip_forward=1
  # Pod traffic stays on the bridge: nothing a pod sends is forwarded anywhere else.
  iptables -I FORWARD 1 -s "$POD_CIDR" ! -o "$BR" -j DROP
  printf 'nameserver %s\n' "$NODE_IP" >"$STATE/resolv.conf"

  # ---- PKI and credentials: one admin token (system:masters) for every component ----
  local pki=$STATE/pki token
  (
    cd "$pki"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.crt -days 7 -subj /CN=harmony-node-ca \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature 2>/dev/null
    openssl req "${ec[@]}" -keyout server.key -out server.csr -subj /CN=kube-apiserver 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:%s,IP:10.96.0.1,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n' "$NODE_IP" >server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile server.ext -out server.crt 2>/dev/null
    openssl req "${ec[@]}" -keyout kc.key -out kc.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >kc.ext
    openssl x509 -req -in kc.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile kc.ext -out kc.crt 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sa.key 2>/dev/null
    openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  )
  token=$(openssl rand -hex 24)
  printf '%s,harmony-admin,harmony-admin-uid,"system:masters"\n' "$token" >"$pki/tokens.csv"
  chmod 600 "$pki"/*.key "$pki/tokens.csv"
  local api_port etcd_c etcd_p kcm_port sch_port kl_port kl_hz
  api_port=$(freeport "$NODE_IP") etcd_c=$(freeport 127.0.0.1) etcd_p=$(freeport 127.0.0.1)
  kcm_port=$(freeport 127.0.0.1) sch_port=$(freeport 127.0.0.1) kl_port=$(freeport "$NODE_IP") kl_hz=$(freeport 127.0.0.1)
  local kp_hz kp_m
  kp_hz=$(freeport 127.0.0.1) kp_m=$(freeport 127.0.0.1)
  local server=https://$NODE_IP:$api_port kc=$STATE/kubeconfig
  cat >"$kc" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: harmony, cluster: {server: "$server", certificate-authority-data: "$(base64 -w0 "$pki/ca.crt")"}}]
users: [{name: admin, user: {token: "$token"}}]
contexts: [{name: harmony, context: {cluster: harmony, user: admin}}]
current-context: harmony
EOF
  chmod 600 "$kc"

  start() { # start <name> <args...>: detached (own session), log in logs/<name>.log, PID in pids/<name>
    local name=$1
    shift
    setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name"
  }
  wait_for() { # wait_for <name> <what> <command...>
    local name=$1 what=$2 i
    shift 2
    for i in $(seq 1 300); do
      "$@" >/dev/null 2>&1 && return 0
      alive "$(cat "$STATE/pids/$name")" || { tail -n 30 "$STATE/logs/$name.log" >&2; die "$name exited before $what"; }
      sleep 0.2
    done
    tail -n 30 "$STATE/logs/$name.log" >&2
    die "$name: no $what after 60 s"
  }

  # ---- containerd: its own config, state and socket; images kept in the cache between runs ----
  cat >"$STATE/cni/net.d/10-harmony.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "harmony", "plugins": [
  {"type": "bridge", "bridge": "$BR", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$STATE/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}
]}
EOF
  cat >"$STATE/containerd.toml" <<EOF
version = 2
root = "$CD_ROOT"
state = "$STATE/cd-state"
[grpc]
  address = "$STATE/containerd.sock"
[ttrpc]
  address = "$STATE/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "harmony.local/pause:1"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  start containerd containerd --config "$STATE/containerd.toml"
  wait_for containerd "its socket" ctr_ version
  # the pause image, then the caller's archives (an unchanged archive imports in a moment)
  local a
  if ! ctr_ -n k8s.io images ls -q | grep -qx harmony.local/pause:1; then
    local pdir=$STATE/pause-layer
    mkdir -p "$pdir" && cp "$cache/pause/pause" "$pdir/pause"
    node "$ROOT/scripts/oci-image.mjs" --out "$STATE/pause.tar" --ref harmony.local/pause:1 \
      --config '{"Entrypoint":["/pause"],"User":"65535:65535"}' --layer "$pdir" 2>/dev/null
    ctr_ -n k8s.io images import "$STATE/pause.tar" >/dev/null
  fi
  for a in "$@"; do
    ctr_ -n k8s.io images import "$a" >/dev/null || die "ctr images import $a failed"
  done

  # ---- control plane ----
  start etcd "$bin/etcd" --name=harmony-node --data-dir="$STATE/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_c" --advertise-client-urls="http://127.0.0.1:$etcd_c" \
    --listen-peer-urls="http://127.0.0.1:$etcd_p" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_p" \
    --initial-cluster="harmony-node=http://127.0.0.1:$etcd_p" --initial-cluster-state=new --log-level=warn
  start kube-apiserver "$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_c" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$api_port" \
    --cert-dir="$STATE/apiserver-certs" --tls-cert-file="$pki/server.crt" --tls-private-key-file="$pki/server.key" \
    --client-ca-file="$pki/ca.crt" --token-auth-file="$pki/tokens.csv" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" --service-cluster-ip-range="$SVC_CIDR" --allow-privileged=true \
    --kubelet-preferred-address-types=InternalIP --kubelet-client-certificate="$pki/kc.crt" \
    --kubelet-client-key="$pki/kc.key" --profiling=false --shutdown-watch-termination-grace-period=2s
  wait_for kube-apiserver /readyz curl -sf --cacert "$pki/ca.crt" -H "Authorization: Bearer $token" "$server/readyz"
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$kc" --authentication-kubeconfig="$kc" \
    --authorization-kubeconfig="$kc" --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" --cert-dir="$STATE/kcm-certs" --profiling=false \
    --controllers='*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route'
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$kc" --authentication-kubeconfig="$kc" \
    --authorization-kubeconfig="$kc" --leader-elect=false --bind-address=127.0.0.1 --secure-port="$sch_port" \
    --profiling=false
  cat >"$STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
address: $NODE_IP
port: $kl_port
healthzBindAddress: 127.0.0.1
healthzPort: $kl_hz
readOnlyPort: 0
containerRuntimeEndpoint: unix://$STATE/containerd.sock
resolvConf: $STATE/resolv.conf
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
authentication: {anonymous: {enabled: false}, webhook: {enabled: false}, x509: {clientCAFile: $pki/ca.crt}}
authorization: {mode: AlwaysAllow}
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
protectKernelDefaults: false
serializeImagePulls: false
EOF
  start kubelet "$bin/kubelet" --config="$STATE/kubelet.yaml" --kubeconfig="$kc" --root-dir="$STATE/kubelet" \
    --cert-dir="$STATE/kubelet-certs" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" -v=1
  start kube-proxy "$bin/kube-proxy" --kubeconfig="$kc" --proxy-mode=iptables --cluster-cidr="$POD_CIDR" \
    --hostname-override="$NODE_NAME" --nodeport-addresses="$NODE_IP/32" --masquerade-all=true \
    --metrics-bind-address="127.0.0.1:$kp_m" --healthz-bind-address="127.0.0.1:$kp_hz" --conntrack-max-per-core=0 \
    --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0
  cat >"$STATE/Corefile" <<EOF
.:53 {
  bind $NODE_IP
  errors
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $kc harmony
    pods insecure
  }
}
EOF
  start coredns "$bin/coredns" -conf "$STATE/Corefile"
  wait_for kubelet "node Ready" sh -c "'$KUBECTL' --kubeconfig '$kc' get node $NODE_NAME -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  wait_for kube-proxy /healthz curl -sf "http://127.0.0.1:$kp_hz/healthz"
  wait_for kube-controller-manager "the default ServiceAccount" "$KUBECTL" --kubeconfig "$kc" get serviceaccount default -n default
  printf 'KUBECONFIG=%s\nSERVER=%s\nNODE_IP=%s\nNODE_NAME=%s\nBIN=%s\nKUBECTL=%s\n' "$kc" "$server" "$NODE_IP" "$NODE_NAME" "$bin" "$KUBECTL" >"$STATE/env"
  trap - EXIT
  log "up in $((SECONDS - t0)) s: $server (kubeconfig $kc)"
  printf '%s\n' "$STATE"
}

case "${1:-}" in
  up)
    shift
    up "$@"
    ;;
  down) down ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
