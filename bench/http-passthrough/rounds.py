#!/usr/bin/env python3
"""Paired interleaved rounds for bench/http-passthrough (driven by run.sh).

All targets are already running (run.sh starts them, pinned, and writes
targets.json). For each body size this script:

  1. preflights every target (status 200, content-length, body identical to
     the upstream's) and aborts with exit code 2 if one is wrong;
  2. runs ROUNDS rounds; each round hits every target once, in an order rotated
     by one per round: WARMUP s of wrk (not measured), then DURATION s measured;
  3. over the measured window only, samples utime+stime from /proc/<pid>/stat
     summed over the target's process tree, the upstream's CPU, wrk's CPU
     (rusage) and /proc/stat; peak RSS is VmHWM summed over the tree (the
     high-water mark is reset via /proc/<pid>/clear_refs before each turn);
  4. computes the ratios inside each round (target / nginx, target / direct,
     target / express-hpm) and reports the medians over rounds.

Raw per-turn records go to --out as JSON lines; the markdown summary goes to
stdout. Only bounded subprocesses are started (each wrk run has a timeout).
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024
SIZES = {"1k": 1024, "1m": MIB}
# Targets the project must meet (median of per-round ratios, harmony vs nginx).
GOALS = [
    ("1k", "rps_vs_nginx", ">=", 0.70, "req/s ÷ nginx, 1 KiB"),
    ("1k", "cpu_vs_nginx", "<=", 2.50, "CPU/req ÷ nginx, 1 KiB"),
    ("1m", "mbps_vs_nginx", ">=", 0.60, "MB/s ÷ nginx, 1 MiB"),
]


# ----------------------------------------------------------------- /proc helpers
def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("ascii", "replace")


def proc_table():
    """pid -> (ppid, utime+stime ticks) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = _read(f"/proc/{name}/stat")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        # rest[0] is field 3 (state): ppid = field 4, utime = 14, stime = 15
        table[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def tree(root, table):
    """root plus all of its descendants (pids)."""
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def tree_cpu_ticks(root, table):
    return sum(table[p][1] for p in tree(root, table))


def status_kib(pid, key):
    try:
        for line in _read(f"/proc/{pid}/status").splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_mem_mib(root, key):
    table = proc_table()
    return sum(status_kib(p, key) for p in tree(root, table)) / 1024


def reset_hwm(root):
    """Reset VmHWM of the tree (writing 5 to clear_refs); False if not allowed."""
    ok = True
    for pid in tree(root, proc_table()):
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def cpu_times():
    """/proc/stat: {'cpu': [...], 'cpu0': [...], ...} jiffies."""
    out = {}
    for line in _read("/proc/stat").splitlines():
        if line.startswith("cpu"):
            parts = line.split()
            out[parts[0]] = [int(x) for x in parts[1:]]
    return out


def busy_and_steal(before, after, key):
    d = [a - b for a, b in zip(after[key], before[key])]
    total = sum(d[:8]) or 1  # user nice system idle iowait irq softirq steal
    idle = d[3] + d[4]
    steal = d[7] if len(d) > 7 else 0
    return (total - idle - steal) / CLK_TCK, steal / CLK_TCK, total / CLK_TCK


def alive(pid):
    return os.path.exists(f"/proc/{pid}")


def upstream_sockets(root, upstream_port):
    """ESTABLISHED TCP sockets the tree holds towards 127.0.0.1:upstream_port."""
    inodes = set()
    for pid in tree(root, proc_table()):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                m = re.match(r"socket:\[(\d+)\]", link)
                if m:
                    inodes.add(m.group(1))
        except OSError:
            continue
    want = f"0100007F:{upstream_port:04X}"
    count = 0
    for line in _read("/proc/net/tcp").splitlines()[1:]:
        f = line.split()
        if f[2] == want and f[3] == "01" and f[9] in inodes:
            count += 1
    return count


# ----------------------------------------------------------------- wrk
def run_wrk(args, url, seconds):
    """Run wrk pinned to the load CPU; return the parsed WRK_RESULT dict."""
    cmd = [
        "taskset", "-c", str(args.load_cpu),
        "wrk", "-t1", f"-c{args.conns}", f"-d{seconds}s", "--timeout", "10s",
        "--latency", "-s", args.lua, url,
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    except subprocess.TimeoutExpired:
        return {"wrk_failed": f"wrk did not finish within {seconds + 60}s"}
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            return json.loads(line[len("WRK_RESULT ") :])
    return {"wrk_failed": f"rc={proc.returncode} stdout={proc.stdout[-500:]!r} stderr={proc.stderr[-500:]!r}"}


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


# ----------------------------------------------------------------- preflight
def fetch(url, timeout=10):
    req = urllib.request.Request(url, headers={"user-agent": "harmony-bench-preflight"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.headers.get("content-length"), resp.read()


def preflight(targets, sizes, reference_url):
    problems = []
    for size in sizes:
        path = f"/{size}"
        _, _, ref = fetch(reference_url + path)
        if len(ref) != SIZES[size]:
            problems.append(f"upstream {path}: {len(ref)} bytes, expected {SIZES[size]}")
            continue
        ref_sha = hashlib.sha256(ref).hexdigest()
        for t in targets:
            try:
                status, clen, body = fetch(t["url"] + path)
            except Exception as e:  # noqa: BLE001 - any failure is reported
                problems.append(f"{t['name']} GET {path}: {type(e).__name__}: {e}")
                continue
            if status != 200:
                problems.append(f"{t['name']} GET {path}: HTTP {status}")
            elif hashlib.sha256(body).hexdigest() != ref_sha:
                problems.append(f"{t['name']} GET {path}: body differs from the upstream's ({len(body)} bytes)")
            elif clen is None:
                # Not fatal: a proxy may legitimately re-frame as chunked.
                print(f"note: {t['name']} GET {path} has no content-length (chunked)", file=sys.stderr)
    return problems


# ----------------------------------------------------------------- measurement
def measure_turn(args, t, size, round_no, position, order, upstream_pid, all_targets):
    url = t["url"] + f"/{size}"
    if not alive(t["pid"]):
        return {"target": t["name"], "error": f"process {t['pid']} is gone"}
    hwm_reset = reset_hwm(t["pid"])
    if args.warmup > 0:
        run_wrk(args, url, args.warmup)

    # The process serving the bytes behind this target: for `direct` the target
    # itself is an upstream; for proxies it is the shared upstream on the load CPU.
    up_pid = t["pid"] if t["name"] == "direct" else upstream_pid

    tab0 = proc_table()
    cpu0 = cpu_times()
    wrk0 = children_cpu_s()
    t0 = time.time()
    tgt0 = tree_cpu_ticks(t["pid"], tab0)
    up0 = tree_cpu_ticks(up_pid, tab0) if up_pid != t["pid"] else 0
    # All targets share PROXY_CPU, so the idle ones must really be idle.
    others = [o for o in all_targets if o["name"] != t["name"]]
    oth0 = {o["name"]: tree_cpu_ticks(o["pid"], tab0) for o in others}

    res = run_wrk(args, url, args.duration)

    tab1 = proc_table()
    cpu1 = cpu_times()
    wrk_cpu = children_cpu_s() - wrk0
    tgt1 = tree_cpu_ticks(t["pid"], tab1)
    up1 = tree_cpu_ticks(up_pid, tab1) if up_pid != t["pid"] else 0
    oth1 = {o["name"]: tree_cpu_ticks(o["pid"], tab1) for o in others}

    rec = {
        "kind": "turn",
        "size": size,
        "round": round_no,
        "position": position,
        "order": order,
        "target": t["name"],
        "url": url,
        "started_at": dt.datetime.fromtimestamp(t0, dt.timezone.utc).isoformat(timespec="seconds"),
        "alive_after": alive(t["pid"]),
        "hwm_reset": hwm_reset,
    }
    if "wrk_failed" in res:
        rec["error"] = res["wrk_failed"]
        return rec
    rec["wrk"] = res
    secs = res["duration_us"] / 1e6
    reqs = res["requests"]
    errors = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
    cpu_s = (tgt1 - tgt0) / CLK_TCK
    up_cpu_s = (up1 - up0) / CLK_TCK
    busy_s, steal_s, _ = busy_and_steal(cpu0, cpu1, "cpu")
    busy_c1, _, _ = busy_and_steal(cpu0, cpu1, f"cpu{args.proxy_cpu}")
    rec.update(
        {
            "duration_s": round(secs, 4),
            "requests": reqs,
            "errors": errors,
            "rps": reqs / secs if secs else 0.0,
            "mbps": res["bytes"] / secs / 1e6 if secs else 0.0,
            "p50_ms": res["lat_p50_us"] / 1000,
            "p90_ms": res["lat_p90_us"] / 1000,
            "p99_ms": res["lat_p99_us"] / 1000,
            "max_ms": res["lat_max_us"] / 1000,
            "target_cpu_s": cpu_s,
            "target_cpu_pct": 100 * cpu_s / secs if secs else 0.0,
            "cpu_us_per_req": 1e6 * cpu_s / reqs if reqs else None,
            "cpu_ms_per_mib": 1e3 * cpu_s / (reqs * SIZES[size] / MIB) if reqs else None,
            "upstream_cpu_s": up_cpu_s if up_pid != t["pid"] else cpu_s,
            "wrk_cpu_s": wrk_cpu,
            "box_busy_cores": busy_s / secs if secs else 0.0,
            "proxy_cpu_busy_pct": 100 * busy_c1 / secs if secs else 0.0,
            "steal_pct_of_core": 100 * steal_s / secs if secs else 0.0,
            # Busy CPU on the whole box that is not ours (other tenants, kernel
            # work charged elsewhere). Can be negative: loopback softirq time is
            # counted both in /proc/stat and in the tasks.
            "not_ours_pct_of_core": 100 * (busy_s - cpu_s - (0 if up_pid == t["pid"] else up_cpu_s) - wrk_cpu) / secs
            if secs
            else 0.0,
            "peak_rss_mib": tree_mem_mib(t["pid"], "VmHWM"),
            "rss_mib": tree_mem_mib(t["pid"], "VmRSS"),
            "procs_in_tree": len(tree(t["pid"], tab1)),
            "idle_targets_cpu_pct": {k: 100 * (oth1[k] - oth0[k]) / CLK_TCK / secs for k in oth0} if secs else {},
        }
    )
    return rec


def ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def add_round_ratios(records):
    by = {r["target"]: r for r in records if "rps" in r}
    nginx, direct, hpm = by.get("nginx"), by.get("direct"), by.get("express-hpm")
    floor = by.get("floor")
    for r in records:
        if "rps" not in r:
            continue
        cpu = r["cpu_us_per_req"]
        r["ratios"] = {
            "rps_vs_nginx": ratio(r["rps"], nginx and nginx["rps"]),
            "rps_vs_direct": ratio(r["rps"], direct and direct["rps"]),
            "rps_vs_express_hpm": ratio(r["rps"], hpm and hpm["rps"]),
            "mbps_vs_nginx": ratio(r["mbps"], nginx and nginx["mbps"]),
            "mbps_vs_direct": ratio(r["mbps"], direct and direct["mbps"]),
            "mbps_vs_express_hpm": ratio(r["mbps"], hpm and hpm["mbps"]),
            # CPU per request of the process under test vs nginx's own, same round.
            "cpu_vs_nginx": ratio(cpu, nginx and nginx["cpu_us_per_req"]) if r["target"] != "direct" else None,
            # Against the featureless node:http + undici proxy (issue 18): the pipeline's own cost.
            "rps_vs_floor": ratio(r["rps"], floor and floor["rps"]),
            "cpu_vs_floor": ratio(cpu, floor and floor["cpu_us_per_req"]) if r["target"] != "direct" else None,
            "cpu_minus_floor_us": (cpu - floor["cpu_us_per_req"])
            if floor and cpu is not None and floor["cpu_us_per_req"] is not None and r["target"] != "direct"
            else None,
        }
        # Two worker processes (proxy.workers = 2, worker_processes 2): against the same with one.
        if r["target"] in WORKER_PAIRS:
            one = by.get(WORKER_PAIRS[r["target"]])
            w2 = by.get("nginx-w2")
            r["ratios"]["rps_vs_one_worker"] = ratio(r["rps"], one and one["rps"])
            r["ratios"]["cpu_vs_one_worker"] = ratio(cpu, one and one["cpu_us_per_req"])
            r["ratios"]["rps_vs_nginx_w2"] = ratio(r["rps"], w2 and w2["rps"])
            r["ratios"]["cpu_vs_nginx_w2"] = ratio(cpu, w2 and w2["cpu_us_per_req"])


# ----------------------------------------------------------------- summary
def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=2, thousands=False):
    if v is None:
        return "–"
    if thousands:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def summarize(size, recs, target_names):
    ok = [r for r in recs if "rps" in r]
    lines = []
    is_1k = size == "1k"
    if is_1k:
        lines.append(f"### 1 KiB JSON (`/1k`), {len({r['round'] for r in recs})} paired rounds")
        lines.append("")
        lines.append(
            "| target | req/s median (min–max) | p50 ms | p99 ms | proxy CPU µs/req | CPU % of core | peak RSS MiB "
            "| req/s ÷ nginx | req/s ÷ direct | CPU/req ÷ nginx | req/s ÷ express-hpm | errors |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    else:
        lines.append(f"### 1 MiB body (`/1m`), {len({r['round'] for r in recs})} paired rounds")
        lines.append("")
        lines.append(
            "| target | MB/s median (min–max) | req/s | p50 ms | p99 ms | proxy CPU ms/MiB | CPU % of core | peak RSS MiB "
            "| MB/s ÷ nginx | MB/s ÷ direct | CPU/MiB ÷ nginx | MB/s ÷ express-hpm | errors |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in target_names:
        rs = [r for r in ok if r["target"] == name]
        failed = [r for r in recs if r["target"] == name and "rps" not in r]
        if not rs:
            why = failed[0].get("error", "no data") if failed else "no data"
            lines.append(f"| {name} | not measured: {why} |" + " |" * (10 if is_1k else 11))
            continue
        ratios = lambda k: med([r["ratios"][k] for r in rs])  # noqa: E731
        is_direct = name == "direct"
        rss = "–" if is_direct else fmt(max(r["peak_rss_mib"] for r in rs), 0)
        errs = sum(r["errors"] for r in rs) + len(failed)
        if is_1k:
            cpu = fmt(med([r["cpu_us_per_req"] for r in rs]), 1) + (" (upstream)" if is_direct else "")
            main = [r["rps"] for r in rs]
            row = [
                name,
                f"{fmt(med(main), thousands=True)} ({fmt(min(main), thousands=True)}–{fmt(max(main), thousands=True)})",
                fmt(med([r["p50_ms"] for r in rs])),
                fmt(med([r["p99_ms"] for r in rs])),
                cpu,
                fmt(med([r["target_cpu_pct"] for r in rs]), 0),
                rss,
                fmt(ratios("rps_vs_nginx")),
                fmt(ratios("rps_vs_direct")),
                fmt(ratios("cpu_vs_nginx")),
                fmt(ratios("rps_vs_express_hpm")),
                str(errs),
            ]
        else:
            cpu = fmt(med([r["cpu_ms_per_mib"] for r in rs]), 2) + (" (upstream)" if is_direct else "")
            main = [r["mbps"] for r in rs]
            row = [
                name,
                f"{fmt(med(main), thousands=True)} ({fmt(min(main), thousands=True)}–{fmt(max(main), thousands=True)})",
                fmt(med([r["rps"] for r in rs]), thousands=True),
                fmt(med([r["p50_ms"] for r in rs])),
                fmt(med([r["p99_ms"] for r in rs])),
                cpu,
                fmt(med([r["target_cpu_pct"] for r in rs]), 0),
                rss,
                fmt(ratios("mbps_vs_nginx")),
                fmt(ratios("mbps_vs_direct")),
                fmt(ratios("cpu_vs_nginx")),
                fmt(ratios("mbps_vs_express_hpm")),
                str(errs),
            ]
        lines.append("| " + " | ".join(row) + " |")
    idle = {}
    for r in ok:
        for k, v in r.get("idle_targets_cpu_pct", {}).items():
            idle.setdefault(k, []).append(v)
    noise = [r["not_ours_pct_of_core"] for r in ok]
    steal = [r["steal_pct_of_core"] for r in ok]
    if noise:
        lines.append("")
        lines.append(
            f"Noise: busy CPU not attributable to target/upstream/wrk, median {fmt(med(noise), 0)}% of a core "
            f"(max {fmt(max(noise), 0)}%); steal median {fmt(med(steal), 1)}% (max {fmt(max(steal), 1)}%)."
        )
    if idle:
        worst = {k: max(v) for k, v in idle.items()}
        lines.append(
            "Idle targets' CPU while another target is measured (max % of a core; they share the proxy CPU): "
            + ", ".join(f"{k} {fmt(v, 1)}" for k, v in worst.items())
            + "."
            + (" **WARNING: an idle target is busy; the other targets' numbers are disturbed.**"
               if max(worst.values()) > 5 else "")
        )
    return lines


# Each two-worker target and its one-worker counterpart.
WORKER_PAIRS = {"harmony-w2": "harmony", "nginx-w2": "nginx"}


def worker_lines(all_recs, target_names):
    """Two worker processes against one (the scaling) and harmony-w2 against nginx-w2, same round."""
    names = [n for n in target_names if n in WORKER_PAIRS]
    if not names:
        return []
    lines = ["### Two worker processes (spread over every CPU, shared with wrk and the upstream), "
             "median of per-round values", ""]
    lines.append("| size | target | req/s | CPU % of a core | req/s ÷ 1 worker | CPU/req ÷ 1 worker "
                 "| req/s ÷ nginx-w2 | CPU/req ÷ nginx-w2 |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for size in sorted({r["size"] for r in all_recs}):
        for name in names:
            rs = [r for r in all_recs if r["size"] == size and r["target"] == name and "rps" in r]
            if not rs:
                continue
            m = lambda k: med([r["ratios"].get(k) for r in rs])  # noqa: E731
            lines.append(
                f"| {size} | {name} | {fmt(med([r['rps'] for r in rs]), thousands=True)} "
                f"| {fmt(med([r['target_cpu_pct'] for r in rs]), 0)} "
                f"| {fmt(m('rps_vs_one_worker'))} | {fmt(m('cpu_vs_one_worker'))} "
                f"| {fmt(m('rps_vs_nginx_w2'))} | {fmt(m('cpu_vs_nginx_w2'))} |"
            )
    lines.append("")
    return lines


def floor_lines(all_recs, target_names):
    """Each Node target against `floor`, same round: what its features cost on top of the minimum."""
    if "floor" not in target_names:
        return []
    lines = ["### Cost over the floor (node:http + undici, no features), median of per-round values", ""]
    lines.append("| size | target | req/s ÷ floor | CPU/req ÷ floor | CPU µs/req − floor |")
    lines.append("|---|---|---|---|---|")
    for size in sorted({r["size"] for r in all_recs}):
        for name in target_names:
            if name in ("floor", "direct"):
                continue
            rs = [r for r in all_recs if r["size"] == size and r["target"] == name and "rps" in r]
            if not rs:
                continue
            m = lambda k: med([r["ratios"].get(k) for r in rs])  # noqa: E731
            lines.append(
                f"| {size} | {name} | {fmt(m('rps_vs_floor'))} | {fmt(m('cpu_vs_floor'))} "
                f"| {fmt(m('cpu_minus_floor_us'), 1)} |"
            )
    lines.append("")
    return lines


def goal_lines(all_recs, target_names):
    lines = ["### Project targets (harmony vs nginx, median of per-round ratios)", ""]
    lines.append("| check | goal | measured | verdict |")
    lines.append("|---|---|---|---|")
    for size, key, op, goal, label in GOALS:
        rs = [r for r in all_recs if r["size"] == size and r["target"] == "harmony"]
        good = [r for r in rs if "rps" in r]
        if "harmony" not in target_names or "nginx" not in target_names:
            verdict, val = "n/a (harmony or nginx not in TARGETS)", None
        elif not any(r["size"] == size for r in all_recs):
            verdict, val = f"n/a ({size} not in SIZES)", None
        elif not good:
            verdict, val = "MISS (not measured)", None
        else:
            val = med([r["ratios"][key] for r in good])
            errs = sum(r["errors"] for r in good) + (len(rs) - len(good))
            met = val is not None and (val >= goal if op == ">=" else val <= goal)
            verdict = "PASS" if met else "MISS"
            if errs:
                verdict = f"MISS ({errs} errors)" if met else f"MISS (and {errs} errors)"
        lines.append(f"| {label} | {op.replace('>=', '≥').replace('<=', '≤')} {goal:.2f} | {fmt(val)} | **{verdict}** |")
    return lines


# ----------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", required=True, help="targets.json written by run.sh")
    ap.add_argument("--out", required=True, help="results JSON-lines file")
    ap.add_argument("--summary", help="also write the markdown summary to this file")
    ap.add_argument("--lua", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--sizes", default="1k,1m")
    ap.add_argument("--proxy-cpu", type=int, default=1)
    ap.add_argument("--load-cpu", type=int, default=0)
    args = ap.parse_args()

    with open(args.targets) as f:
        spec = json.load(f)
    targets = spec["targets"]
    names = [t["name"] for t in targets]
    sizes = [s for s in args.sizes.replace(",", " ").split() if s]
    for s in sizes:
        if s not in SIZES:
            sys.exit(f"unknown size {s!r} (known: {', '.join(SIZES)})")

    # Idle sample: with every target up and no load, the box should be ~idle.
    # Anything else running (builds, tests, other tenants) shows up here.
    c0 = cpu_times()
    time.sleep(2)
    idle_busy_s, _, _ = busy_and_steal(c0, cpu_times(), "cpu")
    idle_busy_pct = 100 * idle_busy_s / 2
    if idle_busy_pct > 20:
        print(f"WARNING: the box is {idle_busy_pct:.0f}% of a core busy before any load "
              "(another workload is running); results will be noisy", file=sys.stderr)

    problems = preflight(targets, sizes, spec["upstream_url"])
    if problems:
        print("PREFLIGHT FAILED — nothing was measured:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 2

    meta = {"kind": "meta", **spec.get("meta", {})}
    meta.update(
        {
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "conns": args.conns,
            "sizes": sizes,
            "targets": targets,
            "proxy_cpu": args.proxy_cpu,
            "load_cpu": args.load_cpu,
            "kernel": platform.release(),
            "idle_busy_pct_of_core_before": round(idle_busy_pct, 1),
            "clk_tck": CLK_TCK,
        }
    )
    all_recs = []
    est = len(sizes) * args.rounds * len(targets) * (args.duration + args.warmup + 0.5)
    print(f"measuring: {len(sizes)} sizes × {args.rounds} rounds × {len(targets)} targets, ~{est / 60:.1f} min",
          file=sys.stderr)
    with open(args.out, "w") as out:
        out.write(json.dumps(meta) + "\n")
        for size in sizes:
            for rnd in range(args.rounds):
                k = rnd % len(targets)
                order = names[k:] + names[:k]
                round_recs = []
                for pos, name in enumerate(order):
                    t = next(x for x in targets if x["name"] == name)
                    rec = measure_turn(args, t, size, rnd + 1, pos, order, spec["upstream_pid"], targets)
                    rec.setdefault("kind", "turn")
                    rec.setdefault("size", size)
                    rec.setdefault("round", rnd + 1)
                    round_recs.append(rec)
                    if "rps" in rec:
                        extra = (f"{rec['cpu_us_per_req']:.1f} µs/req" if size == "1k"
                                 else f"{rec['mbps']:,.0f} MB/s, {rec['cpu_ms_per_mib']:.2f} ms/MiB")
                        print(f"  [{size} round {rnd + 1}/{args.rounds}] {name:<12} {rec['rps']:>10,.0f} req/s  "
                              f"p99 {rec['p99_ms']:7.2f} ms  {extra}  cpu {rec['target_cpu_pct']:.0f}%"
                              + (f"  ERRORS {rec['errors']}" if rec["errors"] else ""), file=sys.stderr)
                    else:
                        print(f"  [{size} round {rnd + 1}/{args.rounds}] {name:<12} FAILED: {rec.get('error')}",
                              file=sys.stderr)
                add_round_ratios(round_recs)
                for rec in round_recs:
                    out.write(json.dumps(rec) + "\n")
                out.flush()
                all_recs.extend(round_recs)
            # Upstream sockets each proxy still holds after the phase (a leak
            # indicator: wrk cuts responses mid-body at the end of every run).
            held = {}
            for t in targets:
                if t["name"] != "direct" and alive(t["pid"]):
                    held[t["name"]] = upstream_sockets(t["pid"], spec["upstream_port"])
            out.write(json.dumps({"kind": "upstream_sockets_after_phase", "size": size, "held": held}) + "\n")
            all_recs.append({"kind": "upstream_sockets_after_phase", "size": size, "held": held, "target": None})

    turns = [r for r in all_recs if r.get("kind") == "turn"]
    md = []
    m = meta
    md.append("## bench/http-passthrough — results")
    md.append("")
    md.append(
        f"{m['started_at']} · kernel {m['kernel']} · {m.get('cpus', '?')} CPUs · node {m.get('node', '?')} · "
        f"{m.get('nginx', '?')} · {m.get('wrk', '?')}"
    )
    md.append(
        f"{args.rounds} rounds × {args.duration} s (warm-up {args.warmup} s per turn), {args.conns} connections, wrk -t1; "
        f"proxy under test pinned to CPU {args.proxy_cpu}, wrk + upstream on CPU {args.load_cpu} "
        f"(`direct`: a second upstream instance on CPU {args.proxy_cpu})."
    )
    md.append(f"Box busy before load (2 s idle sample, all targets up): {idle_busy_pct:.0f}% of a core.")
    if m.get("harmony"):
        md.append(f"harmony: {m['harmony']}")
    md.append("")
    for size in sizes:
        md.extend(summarize(size, [r for r in turns if r["size"] == size], names))
        held = next((r["held"] for r in all_recs if r.get("kind") == "upstream_sockets_after_phase"
                     and r["size"] == size), {})
        if held:
            md.append("Upstream sockets held after the phase (ESTABLISHED to the upstream; >128 suggests a leak): "
                      + ", ".join(f"{k} {v}" for k, v in held.items()) + ".")
        md.append("")
    md.extend(floor_lines(turns, names))
    md.extend(worker_lines(turns, names))
    md.extend(goal_lines(turns, names))
    md.append("")
    md.append(f"Raw per-round results: `{args.out}`")
    text = "\n".join(md) + "\n"
    if args.summary:
        with open(args.summary, "w") as f:
            f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("rounds.py: interrupted", file=sys.stderr)
        sys.exit(130)
