#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmarks every mode of keepalive against bare, in one run.

Each figure is the median of --repeat runs, with min and max, and a ratio
against bare measured in the same run. For costs (time per call, start-up
time) the ratio is cost / bare cost: lower is better. For throughput it is
throughput / bare throughput: higher is better. Prints one table, and
writes results.csv and chart.png (gnuplot) into --out.

Beside the modes, yardsticks measured in the same run: the cost of the
cheapest system call on this machine, one round trip through a supervisor
(`floor reply`, and `perf bench sched seccomp-notify` where perf has it),
and "floor" rows: the simplest seccomp-notify supervisors (bench_floor).
`floor continue` and `floor emulate` only answer (CONTINUE, or a socket
without options); `floor emulate+options` and `floor continue+options` do
exactly the supervisor's job for each strategy (the five options, nothing
else). Every supervised row is also given as a ratio to the floor doing
its job ("vs floor": the mode's cost over the floor's, time per operation
for throughput rows too; 1.00x is the floor itself), and `preload
connect` to upstream's libkeepalive.so where a build of it is given
(`upstream connect`, --upstream-libdir; tests/bench/fetch_upstream.sh).

Runs inside a private network namespace when it can (unshare -n), so that
thousands of short loopback connections leave nothing behind on the host.
"""
import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

COST, THROUGHPUT = "cost", "throughput"

# The floor that does each supervised mode's job, for "vs floor".
FLOOR_OF = {
    # Not a floor: upstream's library doing the same job (--upstream-libdir).
    "preload connect": "upstream connect",
    "supervise emulate": "floor emulate+options",
    "supervise continue": "floor continue+options",
    "supervise": "floor emulate+options",
    "supervise (static)": "floor emulate+options",
    "agent, 1 container": "floor continue+options",
    "agent, 100 containers": "floor continue+options",
}


def metrics_of(text):
    fields = text.strip().splitlines()[-1].split()
    return {k: float(v) for k, _, v in (f.partition("=") for f in fields)}


class Runner:
    def __init__(self, args):
        self.args = args
        lib = args.libdir
        sup = args.supervisor
        self.preload = {
            "preload connect": {"LD_PRELOAD": f"{lib}/libkeepalive.so"},
            "preload listen": {"LD_PRELOAD": f"{lib}/libkeepalive_listen.so"},
            "preload socket": {"LD_PRELOAD": f"{lib}/libkeepalive_socket.so"},
        }
        # name -> (argv prefix, extra environment)
        self.client_modes = [("bare", [], {})]
        self.client_modes += [(n, [], e) for n, e in self.preload.items()]
        # Upstream's libkeepalive.so, where a build of it is at hand: the
        # yardstick for ours (FLOOR_OF).
        self.upstream = []
        if args.upstream_libdir:
            self.upstream = [("upstream connect", [],
                              {"LD_PRELOAD": f"{args.upstream_libdir}/libkeepalive.so"})]
        self.client_modes += self.upstream
        self.client_modes += [
            ("supervise emulate", [sup, "--strategy", "emulate", "--"], {}),
            ("supervise continue", [sup, "--strategy", "continue", "--"], {}),
        ]
        # The floor: bench_floor's variants, trapping TCP socket() only.
        floor = args.floor
        self.floor_modes = [
            ("floor continue", [floor, "continue", "--"], {}),
            ("floor emulate", [floor, "emulate", "--"], {}),
            ("floor blocking", [floor, "blocking", "--"], {}),
        ]
        # The floors doing the supervisor's job, strategy by strategy.
        self.job_floors = [
            ("floor emulate+options", [floor, "emulate-options", "--"], {}),
            ("floor continue+options", [floor, "continue-options", "--"], {}),
        ]
        # The emulate floor plus the two things the supervisor cannot leave
        # out (the caller's cgroups read on every call; ADDFD and SEND
        # apart): where the gap to the floor goes.
        self.checked_floor = ("floor emulate+checks", [floor, "emulate-checked", "--"],
                              {})
        self.server_modes = [
            ("bare", [], {}),
            ("preload listen", [], self.preload["preload listen"]),
            ("supervise listen", [sup, "--mode", "listen", "--"], {}),
        ]
        self.rows = []
        self.tmp = tempfile.mkdtemp(prefix="keepalive-bench-")
        self.servers = []

    def n(self, count):
        return str(max(1, int(count * self.args.scale)))

    def run(self, prefix, env, argv):
        result = subprocess.run(prefix + argv, env={**os.environ, **env},
                                capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(prefix + argv)}: exit {result.returncode}: "
                               f"{result.stderr.strip()}")
        return metrics_of(result.stdout)

    def server(self, prefix, env, argv):
        proc = subprocess.Popen(prefix + argv, env={**os.environ, **env},
                                stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        return proc, proc.stdout.readline().strip()

    def stop(self, proc):
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.servers.remove(proc)

    def stop_all(self):
        for proc in list(self.servers):
            self.stop(proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def modes(self, *names):
        every = (self.client_modes + self.floor_modes + self.job_floors
                 + [self.checked_floor])
        return [m for name in names for m in every if m[0] == name]

    def record(self, figure, kind, unit, modes, sample):
        """sample(name, prefix, env) -> one number, taken --repeat times per
        mode, the modes taking turns so that drift in the machine's load
        spreads over all of them."""
        values = {name: [] for name, _, _ in modes}
        for _ in range(self.args.repeat):
            for name, prefix, env in modes:
                values[name].append(sample(name, prefix, env))
        base = None
        medians = {name: statistics.median(values[name]) for name in values}
        for name, prefix, env in modes:
            med = medians[name]
            base = med if base is None else base
            ratio = med / base if base else float("nan")
            floor = FLOOR_OF.get(name)
            vs_floor = ""
            if floor in medians and medians[floor] and med:
                # A cost ratio: time per operation, for throughput too.
                vs_floor = (med / medians[floor] if kind == COST
                            else medians[floor] / med)
            self.rows.append(dict(figure=figure, mode=name, kind=kind, unit=unit,
                                  median=med, min=min(values[name]),
                                  max=max(values[name]), ratio=ratio,
                                  floor=floor if vs_floor != "" else "",
                                  vs_floor=vs_floor))
            shown = f"{vs_floor:6.2f}x floor" if vs_floor != "" else ""
            print(f"  {figure:<36} {name:<22} {med:12.2f} {unit:<8} {ratio:6.2f}x "
                  f"{shown}", file=sys.stderr, flush=True)


def checked(metrics, what):
    if metrics.get("failures", 0):
        raise RuntimeError(f"{what}: {metrics['failures']:.0f} failures")
    return metrics


def bench_syscall(r, work):
    """What one system call costs here, what a filter adds to a call it
    lets through (the supervisor's and the floor's own), and what one round
    trip through a supervisor costs (getppid trapped and answered)."""
    r.record("cheap syscall (getppid)", COST, "ns/call",
             r.modes("bare", "supervise emulate", "floor emulate+options"),
             lambda name, p, e: r.run(p, e, [work, "syscall", r.n(200000)])["ns_per_op"])
    reply = ("floor reply", [r.args.floor, "reply", "--"], {})
    r.record("trapped getppid, answered", COST, "ns/call", r.modes("bare") + [reply],
             lambda name, p, e: r.run(p, e, [work, "syscall", r.n(20000)])["ns_per_op"])
    bench_perf_seccomp(r)


def bench_perf_seccomp(r):
    """The kernel's own round-trip benchmark, where this perf has it."""
    perf = shutil.which("perf")
    if perf is None:
        print("bench: no perf; no `perf bench sched seccomp-notify` row", file=sys.stderr)
        return
    values = []
    for _ in range(r.args.repeat):
        result = subprocess.run([perf, "bench", "sched", "seccomp-notify"],
                                capture_output=True, text=True, timeout=120)
        found = [line.split()[0] for line in result.stdout.splitlines()
                 if line.strip().endswith("usecs/op")]
        if result.returncode != 0 or not found:
            print("bench: `perf bench sched seccomp-notify` is not in this perf "
                  "(perf 6.3 and later); `floor reply` measures the same round trip",
                  file=sys.stderr)
            return
        values.append(float(found[0]) * 1e3)
    med = statistics.median(values)
    r.rows.append(dict(figure="perf bench sched seccomp-notify", mode="kernel",
                       kind=COST, unit="ns/call", median=med, min=min(values),
                       max=max(values), ratio=1.0, floor="", vs_floor=""))


def bench_calls(r, work):
    echo, port = r.server([], {}, [work, "echo-server"])
    # Upstream's library hooks connect() alone: nothing to compare here.
    r.record("TCP socket()+close", COST, "us/call",
             [m for m in r.client_modes if m not in r.upstream] + r.floor_modes
             + r.modes("floor emulate+options", "floor emulate+checks"),
             lambda name, p, e: r.run(p, e, [work, "socket", r.n(20000)])["ns_per_op"] / 1e3)
    r.record("connect() on loopback", COST, "us/conn", r.client_modes + r.job_floors,
             lambda name, p, e: checked(r.run(p, e, [work, "connect", r.n(4000), port]),
                                        "connect")["ns_per_op"] / 1e3)
    r.record("short connections, client in mode", THROUGHPUT, "conn/s",
             r.client_modes + r.job_floors + [r.checked_floor],
             lambda name, p, e: checked(r.run(p, e, [work, "rr", r.n(4000), port]),
                                        "rr")["ops_per_s"])
    r.stop(echo)


def bench_server(r, work):
    def sample(name, prefix, env):
        proc, port = r.server(prefix, env, [work, "echo-server"])
        try:
            return checked(r.run([], {}, [work, "rr", r.n(4000), port]), "rr")["ops_per_s"]
        finally:
            r.stop(proc)
    r.record("short connections, server in mode", THROUGHPUT, "conn/s", r.server_modes,
             sample)


def bench_untrapped(r, work):
    path = os.path.join(r.tmp, "unix.sock")
    unix, _ = r.server([], {}, [work, "unix-server", path])
    modes = r.modes("bare", "preload socket", "supervise emulate",
                    "floor emulate+options")
    r.record("untrapped syscalls (pipe, UDP, AF_UNIX)", THROUGHPUT, "loops/s", modes,
             lambda name, p, e: checked(r.run(p, e, [work, "untrapped", r.n(20000), path]),
                                        "untrapped")["ops_per_s"])
    r.stop(unix)


def bench_scale(r, work):
    echo, port = r.server([], {}, [work, "echo-server"])
    modes = r.modes("bare", "preload connect", "upstream connect", "supervise emulate",
                    "supervise continue") + r.job_floors
    for threads in (1, 8, 64):
        per_thread = str(max(1, int(4000 * r.args.scale) // threads))
        r.record(f"{threads} threads connecting", THROUGHPUT, "conn/s", modes,
                 lambda name, p, e: checked(r.run(p, e, [work, "threads", str(threads),
                                                         per_thread, port]),
                                            f"{threads} threads")["ops_per_s"])
    r.stop(echo)


def bench_startup(r):
    true = shutil.which("true")
    modes = [("bare", [], {}), ("preload socket", [], r.preload["preload socket"]),
             ("supervise", [r.args.supervisor, "--"], {})]
    if r.args.supervisor_static:
        modes.append(("supervise (static)", [r.args.supervisor_static, "--"], {}))
    modes += r.modes("floor emulate+options")

    def sample(name, prefix, env):
        runs = int(r.n(40))
        start = time.perf_counter()
        for _ in range(runs):
            subprocess.run(prefix + [true], env={**os.environ, **env}, check=True)
        return (time.perf_counter() - start) / runs * 1e3
    r.record("start-up of true(1)", COST, "ms", modes, sample)


def rss_kib(pid, field="VmRSS:"):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def bench_agent(r, work):
    """keepalive-agent serving a container's short connections (its
    profile traps connect() and listen(), as oci_runtime's filter does),
    with one container and with 100 (99 idle ones beside it), against the
    floor doing the same job; and what each container served costs the
    agent in memory. Two agents, one per case, take turns."""
    if not r.args.agent or not r.args.oci_runtime:
        print("bench: no --agent/--oci-runtime; no agent rows", file=sys.stderr)
        return
    agents = {}
    for case in ("one", "many"):
        sock = os.path.join(r.tmp, f"agent-{case}.sock")
        proc = subprocess.Popen([r.args.agent, "--socket", sock, "--control",
                                 os.path.join(r.tmp, f"control-{case}.sock")],
                                stderr=subprocess.DEVNULL)
        r.servers.append(proc)
        for _ in range(500):
            if os.path.exists(sock) or proc.poll() is not None:
                break
            time.sleep(0.01)
        if not os.path.exists(sock):
            print("bench: keepalive-agent did not start (try `keepalive-agent "
                  "check`); no agent rows", file=sys.stderr)
            return
        agents[case] = (proc, sock)
    idle = 99
    for i in range(idle):
        proc = subprocess.Popen([r.args.oci_runtime, agents["many"][1], f"idle-{i}", "--",
                                 "sleep", "3600"])
        r.servers.append(proc)
    echo, port = r.server([], {}, [work, "echo-server"])
    modes = r.modes("bare", "floor continue+options") + [
        ("agent, 1 container", [r.args.oci_runtime, agents["one"][1], "bench", "--"], {}),
        ("agent, 100 containers", [r.args.oci_runtime, agents["many"][1], "bench", "--"],
         {}),
    ]
    r.record("short connections, client in a container", THROUGHPUT, "conn/s", modes,
             lambda name, p, e: checked(r.run(p, e, [work, "rr", r.n(4000), port]),
                                        "rr")["ops_per_s"])
    one, many = (rss_kib(agents[c][0].pid) for c in ("one", "many"))
    per = (many - one) / idle
    r.rows.append(dict(figure="keepalive-agent memory per container", mode="agent",
                       kind=COST, unit="KiB", median=per, min=per, max=per, ratio=1.0,
                       floor="", vs_floor=""))
    print(f"  keepalive-agent RSS: {one} KiB serving 1 container, {many} KiB serving "
          f"{idle + 1}: {per:.1f} KiB per container", file=sys.stderr, flush=True)
    r.stop(echo)


def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def bench_memory(r, work):
    echo, port = r.server([], {}, [work, "echo-server"])

    pss_runs = []

    def supervisor_rss(name, prefix, env):
        # The target makes 64 threads' worth of connections, then the
        # supervisor's peak is read while the target is still alive. Its
        # PSS (shared pages divided among their users: libc's mostly) is
        # sampled beside it: what the supervisor costs the machine.
        proc = subprocess.Popen([r.args.supervisor, "--", "sh", "-c",
                                 f'"$0" threads 64 20 {port} >/dev/null && sleep 0.5', work])
        time.sleep(0.2)
        peak = pss = 0
        while proc.poll() is None:
            try:
                peak = max(peak, rss_kib(proc.pid, "VmHWM:"))
                pss = max(pss, pss_kib(proc.pid))
            except OSError:
                break
            time.sleep(0.05)
        pss_runs.append(pss)
        return peak
    r.record("supervisor peak RSS", COST, "KiB", [("supervise", [], {})], supervisor_rss)
    med = statistics.median(pss_runs)
    r.rows.append(dict(figure="supervisor peak PSS (sampled)", mode="supervise", kind=COST,
                       unit="KiB", median=med, min=min(pss_runs), max=max(pss_runs),
                       ratio=1.0, floor="", vs_floor=""))
    modes = [("bare", [], {})] + [(n, [], e) for n, e in r.preload.items()]
    r.record("RSS of a small program", COST, "KiB", modes,
             lambda name, p, e: r.run(p, e, [work, "rss"])["rss_kib"])
    r.stop(echo)


def print_table(rows):
    print(f"{'figure':<40} {'mode':<22} {'median':>12} {'min':>12} {'max':>12} "
          f"{'unit':<8} {'vs bare':>8} {'vs floor':>9}")
    print("-" * 130)
    last = None
    for row in rows:
        figure = row["figure"] if row["figure"] != last else ""
        last = row["figure"]
        better = "lower" if row["kind"] == COST else "higher"
        vs_floor = f"{row['vs_floor']:8.2f}x" if row["vs_floor"] != "" else " " * 9
        print(f"{figure:<40} {row['mode']:<22} {row['median']:12.2f} {row['min']:12.2f} "
              f"{row['max']:12.2f} {row['unit']:<8} {row['ratio']:7.2f}x {vs_floor}"
              + (f"  ({better} is better vs bare)" if figure else ""))
    print("vs floor: the mode's time per operation over that of the floor doing "
          "its job (emulate: floor emulate+options; continue: floor continue+options; "
          "preload connect: upstream's libkeepalive.so)")


def write_outputs(rows, out):
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows(rows)
    if shutil.which("gnuplot") is None:
        print("bench: gnuplot not found; no chart", file=sys.stderr)
        return
    from chart import draw
    draw(rows, out)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", required=True, help="bench_workload binary")
    parser.add_argument("--supervisor", required=True, help="keepalive-supervise binary")
    parser.add_argument("--floor", required=True,
                        help="bench_floor binary (the cheapest supervisor possible)")
    parser.add_argument("--libdir", required=True, help="folder of the preload libraries")
    parser.add_argument("--supervisor-static",
                        help="keepalive-supervise-static binary (a start-up row)")
    parser.add_argument("--agent", help="keepalive-agent binary (agent rows)")
    parser.add_argument("--oci-runtime", help="tests/helpers/oci_runtime (agent rows)")
    parser.add_argument("--out", required=True, help="folder for results.csv, chart.png")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every iteration count (0.1 for a quick look)")
    parser.add_argument("--no-netns", action="store_true")
    parser.add_argument("--upstream-libdir", default=os.environ.get("KEEPALIVE_BENCH_UPSTREAM"),
                        help="folder of upstream's libkeepalive.so (tests/bench/"
                        "fetch_upstream.sh builds it): an `upstream connect` row "
                        "beside ours")
    args = parser.parse_args()
    if args.upstream_libdir and not os.path.isfile(
            os.path.join(args.upstream_libdir, "libkeepalive.so")):
        parser.error(f"--upstream-libdir {args.upstream_libdir}: no libkeepalive.so in it")
    if not args.upstream_libdir:
        print("bench: no build of upstream's libkeepalive.so (--upstream-libdir); "
              "`preload connect` is compared with bare only", file=sys.stderr)

    if not args.no_netns and os.environ.get("KEEPALIVE_BENCH_NETNS") != "1":
        if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
            os.environ["KEEPALIVE_BENCH_NETNS"] = "1"
            os.execvp("unshare", ["unshare", "-n", "sh", "-c",
                                  'ip link set lo up && exec "$@"', "sh",
                                  sys.executable] + sys.argv)
        print("bench: unshare -n refused; running in the host network namespace",
              file=sys.stderr)

    os.makedirs(args.out, exist_ok=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    r = Runner(args)
    try:
        bench_syscall(r, args.workload)
        bench_calls(r, args.workload)
        bench_server(r, args.workload)
        bench_untrapped(r, args.workload)
        bench_scale(r, args.workload)
        bench_agent(r, args.workload)
        bench_startup(r)
        bench_memory(r, args.workload)
    finally:
        r.stop_all()
    print_table(r.rows)
    write_outputs(r.rows, args.out)


if __name__ == "__main__":
    main()
