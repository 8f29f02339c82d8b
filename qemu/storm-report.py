#!/usr/bin/env python3
"""Reads the run directories of qemu/storm.sh (one per storm, written by qemu/storm-ns.sh),
prints per node and per storm what happened, draws each storm's timeline with matplotlib into
<run>.svg (and .png) next to the run directory, and exits 1 unless every storm passed.

Per node: whether it booted (QEMU exited by itself after the real init's first line, no
FATAL), its phases from its own console (kernel timestamps, so all in one guest clock), the
head that served its root and in which place of its ranking. Per storm: time-to-all (host
clock: from the storm's start to the last node's QEMU exit) against the CPU floor, N x one
boot's CPU seconds (QEMU's user+system: the median over the N=1 storms of the same kind, else
this storm's median) / cores, and the median and worst /init -> real init.

NFS calls: each head's capture (head-K.pcap) is decoded by qemu/rpcstat.py; a node's calls are
those from the addresses dnsmasq acknowledged to its MAC (node-I/mac), on every head. Its
client-ID calls (COMPOUNDs with EXCHANGE_ID, CREATE_SESSION, DESTROY_SESSION, or SETCLIENTID
for NFSv4.0) show whether it kept one identity on the server: a linuxrc node over
CLIENT_ID_BOUND fails the storm.
"""
import argparse
import os
import re
import statistics
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rpcstat  # noqa: E402

KTIME = re.compile(r"^\[\s*(\d+\.\d+)\]")
T_INIT = "Run /init as init process"
T_REAL = "unionroot-demo: real init started"


def ktime(lines, pattern):
    """The kernel timestamp of the first line containing pattern (a regex), or None."""
    rx = re.compile(pattern)
    for line in lines:
        if rx.search(line):
            m = KTIME.match(line)
            if m:
                return float(m.group(1))
    return None


def first(lines, pattern):
    rx = re.compile(pattern)
    for line in lines:
        m = rx.search(line)
        if m:
            return m
    return None


def read(path, default=""):
    try:
        return Path(path).read_text(errors="replace").strip()
    except OSError:
        return default


# A clean NFSv4.1+ mount makes 1-2 EXCHANGE_ID (Linux 6.1 sends a second one to test for session
# trunking) and 1-2 CREATE_SESSION per server: 3 in all, measured on a lone node (storm N=1). A
# linuxrc node that failed over may also have spoken to its first head before it died: at most
# as much again, so 8 leaves that room. Nodes that share an owner string make hundreds: the
# server takes each one's EXCHANGE_ID as the other's reboot and drops its sessions, and the two
# re-establish in turn for as long as both run.
CLIENT_ID_BOUND = 8
COLLISION = "NFSv4 client owner collision: nodes share a client identifier"
DHCPACK = re.compile(r"DHCPACK\(\S+\) (\d+\.\d+\.\d+\.\d+) ([0-9a-f:]{17})")


def leases(log):
    """{MAC: [IPv4 addresses]} from dnsmasq's log text (its DHCPACK lines)."""
    out = {}
    for m in DHCPACK.finditer(log):
        ips = out.setdefault(m.group(2), [])
        if m.group(1) not in ips:
            ips.append(m.group(1))
    return out


def head_calls(run, heads):
    """({client address: rpcstat.v4_clients counts, summed over heads}, [problems], [notes])
    from the heads' captures in run."""
    per, problems, notes = {}, [], []
    for k in range(1, heads + 1):
        pcap = run / f"head-{k}.pcap"
        try:
            clients = rpcstat.v4_clients(pcap.read_bytes())
        except (OSError, ValueError) as e:
            problems.append(f"head {k}: no NFS capture to count calls in ({pcap.name}: "
                            f"{getattr(e, 'strerror', None) or e}; see head-{k}.tcpdump)")
            continue
        dropped = re.search(r"(\d+) packets? dropped by kernel", read(run / f"head-{k}.tcpdump"))
        if dropped and int(dropped.group(1)):
            notes.append(f"head {k}: tcpdump dropped {dropped.group(1)} packets: counts too low")
        for ip, c in clients.items():
            tot = per.setdefault(ip, {})
            for key, v in c.items():
                tot[key] = tot.get(key, 0) + v
    for ip, c in sorted(per.items()):
        if c.get("gaps"):
            notes.append(f"{ip}: {c['gaps']} connections with a hole in the capture: "
                         "counts too low")
    return per, problems, notes


def node_calls(r, d, acks, per):
    """Adds to node report r its NFS calls ("calls") and their counts ("nfs"), summed over the
    addresses dnsmasq gave its MAC; None when it has no address."""
    ips = acks.get(read(d / "mac").lower(), [])
    r["ips"] = ips
    if not ips:
        r["calls"], r["nfs"] = None, {}
        return
    nfs = {}
    for ip in ips:
        for key, v in per.get(ip, {}).items():
            nfs[key] = nfs.get(key, 0) + v
    r["calls"], r["nfs"] = nfs.get("calls", 0), nfs


def client_id_text(nfs):
    """'N client-ID calls (EXCHANGE_ID a, CREATE_SESSION b, ...)', naming the ops that occurred."""
    parts = [f"{op} {nfs[op]}" for op in rpcstat.CLIENT_ID_OPS if nfs.get(op)]
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{nfs.get('client_id', 0)} client-ID calls{detail}"


def node_report(d, kind, fatal=""):
    """What one node's directory says: ok, why not, phases [(name, start, end)], head. A console
    line matching the ERE fatal (storm.sh's) fails the node even when its QEMU ended by itself."""
    lines = read(d / "console.log").splitlines()
    r = {"name": d.name, "ok": True, "why": [], "phases": [], "head": "-", "rank": None}
    stop = read(d / "stop", "no outcome")
    if stop != "exited rc=0":
        r["ok"] = False
        r["why"].append(stop)
    bad = first(lines, fatal) if fatal else None
    if bad and not stop.startswith("fatal:"):
        r["ok"] = False
        r["why"].append(f"its console says {bad.string.strip()!r}")
    t_init, t_real = ktime(lines, re.escape(T_INIT)), ktime(lines, re.escape(T_REAL))
    if t_init is None or t_real is None:
        r["ok"] = False
        r["why"].append("no /init or no real-init line on the console")
    if kind == "control":
        # The apparatus alone: no network, no root; it must only have run and powered off.
        if not first(lines, r"^PROOF control done"):
            r["ok"] = False
            r["why"].append("the control init did not run")
    elif not first(lines, r"^PROOF root=overlay"):
        r["ok"] = False
        r["why"].append("the real init did not run on the overlay root")
    r["init"], r["real"] = t_init, t_real
    start, end = read(d / "start"), read(d / "end")
    r["host_start"] = int(start) / 1e6 if start else None
    r["host_end"] = int(end) / 1e6 if end else None
    cpu = read(d / "cpu").split()
    r["cpu"] = None
    if len(cpu) == 2:
        secs = []
        for v in cpu:
            m = re.fullmatch(r"(\d+)m([\d.]+)s", v)
            if m:
                secs.append(int(m.group(1)) * 60 + float(m.group(2)))
        if len(secs) == 2:
            r["cpu"] = sum(secs)
    if t_init is not None:
        r["phases"].append(("kernel", 0.0, t_init))
    if kind == "linuxrc":
        m = first(lines, r"served by (\S+) \(server (\d+) of (\d+), round (\d+)\)")
        if m:
            r["head"], r["rank"] = m.group(1), int(m.group(2))
        s = first(lines, r"linuxrc: exec \S+ \(total (\d+) ms \((.*)\)\)")
        j = first(lines, r"linuxrc: dhcp: waiting (\d+) ms before DISCOVER")
        jitter = int(j.group(1)) / 1000 if j else 0.0
        if s and t_init is not None:
            t = t_init
            for part in s.group(2).split(", "):
                pm = re.fullmatch(r"(.+) (\d+) ms", part)
                if not pm:
                    continue
                name, dur = pm.group(1), int(pm.group(2)) / 1000
                if name == "network" and jitter:
                    r["phases"].append(("jitter", t, t + jitter))
                    t, dur = t + jitter, max(dur - jitter, 0.0)
                r["phases"].append((name, t, t + dur))
                t += dur
            if t_real is not None:
                r["phases"].append(("switch+exec", t, t_real))
    elif kind == "baseline":
        m = first(lines, r"baseline: nfs (\S+):\S+ mounted")
        if m:
            r["head"], r["rank"] = m.group(1), 1
        marks = [
            ("modules", ktime(lines, r"baseline: modules loaded")),
            ("network", ktime(lines, r"baseline: dhcp .*lease")),
            ("root", ktime(lines, r"baseline: nfs .* mounted")),
            ("switch+exec", t_real),
        ]
        t = t_init
        for name, at in marks:
            if t is not None and at is not None:
                r["phases"].append((name, t, at))
                t = at
    else:
        if t_init is not None and t_real is not None:
            r["phases"].append(("init", t_init, t_real))
    if r["ok"] and r["head"] == "-" and kind != "control":
        r["ok"] = False
        r["why"].append("no line says which head served the root")
    return r


COLORS = {
    "kernel": "#bbbbbb",
    "mounts+config": "#8dd3c7",
    "modules": "#80b1d3",
    "jitter": "#ffffb3",
    "network": "#fdb462",
    "root": "#b3de69",
    "switch+exec": "#fb8072",
    "init": "#fb8072",
}


def draw(run, kind, nodes, path, title):
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(nodes) + 2.2))
    seen = set()
    for row, n in enumerate(nodes):
        for name, a, b in n["phases"]:
            label = None if name in seen else name
            seen.add(name)
            ax.barh(row, b - a, left=a, color=COLORS.get(name, "#cccccc"), edgecolor="black",
                    linewidth=0.3, label=label)
        tag = n["head"] + (f" (#{n['rank']})" if n["rank"] and n["rank"] > 1 else "")
        if not n["ok"]:
            tag = "FAILED " + tag
        end = max((b for _, _, b in n["phases"]), default=0)
        ax.text(end + 0.05, row, tag, va="center", fontsize=7)
    ax.set_yticks(range(len(nodes)))
    ax.set_yticklabels([n["name"] for n in nodes])
    ax.invert_yaxis()
    ax.set_xlabel("seconds of each node's own uptime (QEMUs started together; host clocks in the text report)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=7, ncol=7)
    fig.tight_layout()
    fig.savefig(path)
    fig.savefig(path.with_suffix(".png"), dpi=100)
    plt.close(fig)


def host_cpu(run, nodes):
    """Where the host cores' time went from the nodes' start to the last QEMU's exit, in
    seconds, from /proc/stat's cpu lines (stat-start, and the last node's stat-end): a dict
    with all, guests (the nodes' QEMU CPU), other (busy, not the guests: heads, dnsmasq,
    tcpdump, the harness, the kernel's network), idle (with iowait) and steal; None without
    the files."""
    last = max((x for x in nodes if x["host_end"]), key=lambda x: x["host_end"], default=None)
    if last is None:
        return None
    a = read(run / "stat-start").split()[1:]
    b = read(run / last["name"] / "stat-end").split()[1:]
    if len(a) < 8 or len(b) < 8:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    d = [(int(y) - int(x)) / hz for x, y in zip(a[:8], b[:8])]
    user, nice, system, idle, iowait, irq, softirq, steal = d
    busy = user + nice + system + irq + softirq
    guests = sum(x["cpu"] for x in nodes if x["cpu"] is not None)
    return {"all": sum(d), "guests": guests, "other": busy - guests, "idle": idle + iowait,
            "steal": steal}


def run_kind(run):
    """(kind, N) from a run directory's name: KIND-nN, or KIND-nN-rR for the R-th repeat."""
    kind, n = re.fullmatch(r"(\w+)-n(\d+)(?:-r\d+)?", run.name).groups()
    return kind, int(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--cores", type=int, required=True)
    ap.add_argument("--killed", type=int)
    ap.add_argument("--every-head", action="store_true")
    ap.add_argument("--fatal", default="", help="an ERE: a console line matching it fails the node")
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    heads = [f"192.168.77.{10 + k}" for k in range(1, a.heads + 1)]
    # One boot's CPU, per kind: the median over the boots of its N=1 storms (qemu/storm.sh runs
    # N=1 several times: one boot's CPU moves by up to 15 % from boot to boot).
    solo = {}
    for run in map(Path, a.runs):
        kind, n = run_kind(run)
        x = node_report(run / "node-1", kind, a.fatal) if n == 1 else None
        if x and x["ok"] and x["cpu"] is not None:
            solo.setdefault(kind, []).append(x["cpu"])
    one_boot_cpu = {k: statistics.median(v) for k, v in solo.items()}
    summary = []
    failed = False
    for run in map(Path, a.runs):
        kind, n = run_kind(run)
        nodes = [node_report(run / f"node-{i}", kind, a.fatal) for i in range(1, n + 1)]
        problems = [f"{x['name']}: {'; '.join(x['why'])}" for x in nodes if not x["ok"]]
        clients, capture_problems, notes = head_calls(run, a.heads)
        acks = leases(read(run / "dnsmasq.log"))
        for i, x in enumerate(nodes, 1):
            node_calls(x, run / f"node-{i}", acks, clients)
        if kind == "linuxrc":
            # Without the captures the check below cannot run: that fails the storm too.
            problems += capture_problems
            for x in nodes:
                if x["calls"] is None and x["ok"]:
                    problems.append(f"{x['name']}: no DHCPACK for its MAC in dnsmasq.log: its "
                                    "NFS calls cannot be counted")
                elif x["ok"] and x["calls"] is not None and not x["nfs"].get("client_id"):
                    # Every NFSv4 mount begins with one: none captured means the counts
                    # cannot be trusted (a capture that missed the node), not a clean node.
                    problems.append(f"{x['name']}: no client-ID call of its in the captures: its "
                                    "NFSv4 identity cannot be checked")
                elif x["calls"] is not None and x["nfs"].get("client_id", 0) > CLIENT_ID_BOUND:
                    problems.append(f"{x['name']}: {client_id_text(x['nfs'])}, over the bound "
                                    f"of {CLIENT_ID_BOUND}: {COLLISION}")
        elif kind == "baseline":
            notes = capture_problems + notes
            notes += [f"{x['name']}: {client_id_text(x['nfs'])}" for x in nodes
                      if x["calls"] is not None and x["nfs"].get("client_id", 0) > CLIENT_ID_BOUND]
            notes.append("the busybox baseline sets no NFSv4 client identifier: its nodes on one "
                         "head share the owner string and collide; counted, not checked")
        else:
            notes.append("the control boots the kernel alone (no network, no root): its ratio "
                         "is what N guests on these cores cost by themselves")
        if a.every_head and kind != "control":
            served = {x["head"] for x in nodes if x["ok"]}
            for h in heads:
                if h not in served:
                    problems.append(f"head {h} served no node")
        if a.killed:
            dead = heads[a.killed - 1]
            for x in nodes:
                if x["head"] == dead:
                    problems.append(f"{x['name']}: served by the killed head {dead}")
            moved = [x for x in nodes if x["ok"] and x["rank"] and x["rank"] > 1]
            if not moved:
                problems.append(f"no node failed over from the killed head {dead}: the kill proved nothing")
        timings = read(run / "timings")
        print(f"\n== storm {kind} N={n}, {a.heads} heads"
              + (f", head {a.killed} killed" if a.killed else "")
              + f"; host load before {read(run / 'load-before')[5:]}, after {read(run / 'load-after')[5:]}")
        if a.killed:
            for line in timings.splitlines():
                if "killed" in line:
                    print(f"   {line}")
        names = [p[0] for p in nodes[0]["phases"]] if nodes and nodes[0]["phases"] else []
        print(f"{'node':8} {'ok':4} {'head (rank)':20} {'/init->real ms':>14} {'cpu s':>6} "
              f"{'done s':>7} {'nfs calls':>9} {'client-id':>9}  phases (ms)")
        starts = [x["host_start"] for x in nodes if x["host_start"]]
        t0 = min(starts) if starts else 0
        for x in nodes:
            dt = (x["real"] - x["init"]) * 1000 if x["init"] is not None and x["real"] is not None else None
            done = x["host_end"] - t0 if x["host_end"] else None
            ph = ", ".join(f"{p} {1000 * (b - e0):.0f}" for p, e0, b in x["phases"])
            head = x["head"] + (f" ({x['rank']})" if x["rank"] else "")
            cpu_s = "-" if x["cpu"] is None else f"{x['cpu']:.1f}"
            calls = "-" if x["calls"] is None else str(x["calls"])
            cid = "-" if x["calls"] is None else str(x["nfs"].get("client_id", 0))
            print(f"{x['name']:8} {'yes' if x['ok'] else 'NO':4} {head:20} "
                  f"{'-' if dt is None else str(round(dt)):>14} "
                  f"{cpu_s:>6} "
                  f"{'-' if done is None else f'{done:.1f}':>7} {calls:>9} {cid:>9}  {ph}")
        for k, h in enumerate(heads, 1):
            b = read(run / f"head-{k}.bytes").split()
            served = sum(1 for x in nodes if x["head"] == h)
            if len(b) == 2:
                tx = int(b[0]) / 1e6
                per = f", {tx / served:.2f} MB per node served" if served else ""
                print(f"   head {h}: served {served} nodes, sent {tx:.2f} MB, received "
                      f"{int(b[1]) / 1e6:.2f} MB{per}")
        hc = host_cpu(run, nodes)
        if hc:
            print(f"   host cores, start to last exit: {hc['all']:.1f} s = guests' QEMU "
                  f"{hc['guests']:.1f} + other work {hc['other']:.1f} + idle {hc['idle']:.1f} "
                  f"+ stolen by the hypervisor {hc['steal']:.1f}")
        total_calls = sum(c.get("calls", 0) for c in clients.values())
        total_cid = sum(c.get("client_id", 0) for c in clients.values())
        bound = f"at most {CLIENT_ID_BOUND} per node" if kind == "linuxrc" else "not checked"
        print(f"   NFS calls: {total_calls} in all, {total_cid} of them client-ID "
              f"({', '.join(rpcstat.CLIENT_ID_OPS)}; {bound})")
        for note in notes:
            print(f"   note: {note}")
        for p in problems:
            print(f"   FAIL {p}")
        ok = [x for x in nodes if x["ok"]]
        cpus = [x["cpu"] for x in nodes if x["cpu"] is not None]
        cpu1 = one_boot_cpu.get(kind, statistics.median(cpus) if cpus else None)
        if kind in one_boot_cpu:
            k = len(solo[kind])
            cpu1_from = f"median of {k} N=1 storms" if k > 1 else "N=1 storm"
        else:
            cpu1_from = f"median of this N={n} storm"
        ends = [x["host_end"] for x in nodes if x["host_end"]]
        to_all = max(ends) - t0 if ends and len(ends) == n else None
        floor = n * cpu1 / a.cores if cpu1 else None
        dts = sorted((x["real"] - x["init"]) * 1000 for x in ok)
        line = {
            "kind": kind, "n": n, "failures": len(problems),
            "to_all": to_all, "floor": floor, "cpu1": cpu1,
            "median": statistics.median(dts) if dts else None, "worst": dts[-1] if dts else None,
            "served": {h: sum(1 for x in ok if x["head"] == h) for h in heads},
            "cpu1_from": cpu1_from,
            "load": read(run / "load-before")[5:],
            "calls": total_calls,
        }
        summary.append(line)
        svg = run.parent / f"{run.name}.svg"
        draw(run, kind, nodes, svg,
             f"storm {kind} N={n}, {a.heads} heads: time-to-all "
             f"{'-' if to_all is None else f'{to_all:.1f}'} s, CPU floor "
             f"{'-' if floor is None else f'{floor:.1f}'} s; load {line['load']}")
        print(f"   timeline: {svg}")
        if problems:
            failed = True
    print(f"\n== storms ({a.cores} cores; floor = N x one boot's CPU (QEMU user+sys) / cores)")
    print(f"{'kind':9} {'N':>3} {'fail':>4} {'to-all s':>8} {'floor s':>7} {'to-all/floor':>12} "
          f"{'1 boot cpu':>10} {'median ms':>9} {'worst ms':>8} {'nfs calls':>9}  "
          f"served per head   load before")

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for s in summary:
        ratio = s["to_all"] / s["floor"] if s["to_all"] and s["floor"] else None
        served = " ".join(str(c) for c in s["served"].values())
        print(f"{s['kind']:9} {s['n']:>3} {s['failures']:>4} {f(s['to_all'], '.1f'):>8} "
              f"{f(s['floor'], '.1f'):>7} {f(ratio, '.2f'):>12} {f(s['cpu1'], '.1f'):>10} "
              f"{f(s['median'], '.0f'):>9} {f(s['worst'], '.0f'):>8} {s['calls']:>9}  {served:16} "
              f"{s['load']}"
              f"  (1 boot cpu: {s['cpu1_from']})")
    # Each kind against the control of the same N (the median over repeats): what the boot path
    # adds to what N guests on these cores cost by themselves.
    ratios = {}
    for s in summary:
        if s["to_all"] and s["floor"]:
            ratios.setdefault((s["kind"], s["n"]), []).append(s["to_all"] / s["floor"])
    controls = {n: statistics.median(v) for (k, n), v in ratios.items() if k == "control"}
    if controls:
        print("against the control (to-all/floor of the kind / to-all/floor of the control):")
        for (kind, n), v in ratios.items():
            if kind != "control" and n in controls:
                r = statistics.median(v)
                print(f"   {kind:9} N={n:<3} {r:.2f} / {controls[n]:.2f} = {r / controls[n]:.2f}")
    print("storm: " + ("FAILED (see FAIL lines above)" if failed else "every storm passed (zero failures)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
