#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Benchmarks every mode of keepalive against bare, in one run.

Each figure is the median of --repeat runs, with min and max, and a ratio
against bare measured in the same run. For costs (time per call, start-up
time) the ratio is cost / bare cost: lower is better. For throughput it is
throughput / bare throughput: higher is better. Prints one table, and
writes results.csv and chart.png (gnuplot) into --out.

Beside the modes, two yardsticks measured in the same run: the cost of the
cheapest system call on this machine, and "floor" rows for socket(): the
cheapest seccomp-notify supervisor possible (bench_floor), which traps
socket() and does nothing but answer it. The supervisor cannot beat them.

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

    def record(self, figure, kind, unit, modes, sample):
        """sample(name, prefix, env) -> one number, taken --repeat times per
        mode, the modes taking turns so that drift in the machine's load
        spreads over all of them."""
        values = {name: [] for name, _, _ in modes}
        for _ in range(self.args.repeat):
            for name, prefix, env in modes:
                values[name].append(sample(name, prefix, env))
        base = None
        for name, prefix, env in modes:
            med = statistics.median(values[name])
            base = med if base is None else base
            ratio = med / base if base else float("nan")
            self.rows.append(dict(figure=figure, mode=name, kind=kind, unit=unit,
                                  median=med, min=min(values[name]),
                                  max=max(values[name]), ratio=ratio))
            print(f"  {figure:<36} {name:<20} {med:12.2f} {unit:<8} {ratio:6.2f}x",
                  file=sys.stderr, flush=True)


def checked(metrics, what):
    if metrics.get("failures", 0):
        raise RuntimeError(f"{what}: {metrics['failures']:.0f} failures")
    return metrics


def bench_syscall(r, work):
    """What one system call costs here, and what a filter adds to a call it
    lets through (the supervisor's and the floor's own)."""
    modes = [m for m in r.client_modes if m[0] in ("bare", "supervise emulate")]
    modes += [m for m in r.floor_modes if m[0] == "floor emulate"]
    r.record("cheap syscall (getppid)", COST, "ns/call", modes,
             lambda name, p, e: r.run(p, e, [work, "syscall", r.n(200000)])["ns_per_op"])


def bench_calls(r, work):
    echo, port = r.server([], {}, [work, "echo-server"])
    r.record("TCP socket()+close", COST, "us/call", r.client_modes + r.floor_modes,
             lambda name, p, e: r.run(p, e, [work, "socket", r.n(20000)])["ns_per_op"] / 1e3)
    r.record("connect() on loopback", COST, "us/conn", r.client_modes,
             lambda name, p, e: checked(r.run(p, e, [work, "connect", r.n(4000), port]),
                                        "connect")["ns_per_op"] / 1e3)
    r.record("short connections, client in mode", THROUGHPUT, "conn/s", r.client_modes,
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
    modes = [m for m in r.client_modes if m[0] in ("bare", "preload socket",
                                                   "supervise emulate")]
    r.record("untrapped syscalls (pipe, UDP, AF_UNIX)", THROUGHPUT, "loops/s", modes,
             lambda name, p, e: checked(r.run(p, e, [work, "untrapped", r.n(20000), path]),
                                        "untrapped")["ops_per_s"])
    r.stop(unix)


def bench_scale(r, work):
    echo, port = r.server([], {}, [work, "echo-server"])
    modes = [m for m in r.client_modes if m[0] in ("bare", "preload connect",
                                                   "supervise emulate",
                                                   "supervise continue")]
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

    def sample(name, prefix, env):
        runs = int(r.n(40))
        start = time.perf_counter()
        for _ in range(runs):
            subprocess.run(prefix + [true], env={**os.environ, **env}, check=True)
        return (time.perf_counter() - start) / runs * 1e3
    r.record("start-up of true(1)", COST, "ms", modes, sample)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def bench_memory(r, work):
    echo, port = r.server([], {}, [work, "echo-server"])

    def supervisor_rss(name, prefix, env):
        # The target makes 64 threads' worth of connections, then the
        # supervisor's peak is read while the target is still alive.
        proc = subprocess.Popen([r.args.supervisor, "--", "sh", "-c",
                                 f'"$0" threads 64 20 {port} >/dev/null && sleep 0.5', work])
        time.sleep(0.2)
        peak = 0
        while proc.poll() is None:
            try:
                peak = max(peak, peak_rss_kib(proc.pid))
            except OSError:
                break
            time.sleep(0.05)
        return peak
    r.record("supervisor peak RSS", COST, "KiB", [("supervise", [], {})], supervisor_rss)
    modes = [("bare", [], {})] + [(n, [], e) for n, e in r.preload.items()]
    r.record("RSS of a small program", COST, "KiB", modes,
             lambda name, p, e: r.run(p, e, [work, "rss"])["rss_kib"])
    r.stop(echo)


def print_table(rows):
    print(f"{'figure':<40} {'mode':<20} {'median':>12} {'min':>12} {'max':>12} "
          f"{'unit':<8} {'vs bare':>8}")
    print("-" * 118)
    last = None
    for row in rows:
        figure = row["figure"] if row["figure"] != last else ""
        last = row["figure"]
        better = "lower" if row["kind"] == COST else "higher"
        print(f"{figure:<40} {row['mode']:<20} {row['median']:12.2f} {row['min']:12.2f} "
              f"{row['max']:12.2f} {row['unit']:<8} {row['ratio']:7.2f}x"
              + (f"  ({better} is better)" if figure else ""))


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
    parser.add_argument("--out", required=True, help="folder for results.csv, chart.png")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every iteration count (0.1 for a quick look)")
    parser.add_argument("--no-netns", action="store_true")
    args = parser.parse_args()

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
        bench_startup(r)
        bench_memory(r, args.workload)
    finally:
        r.stop_all()
    print_table(r.rows)
    write_outputs(r.rows, args.out)


if __name__ == "__main__":
    main()
