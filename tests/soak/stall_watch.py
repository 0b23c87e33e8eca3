#!/usr/bin/env python3
"""Watches every QEMU guest on this host for a kernel hang report and records what the host was
doing when it happened, to tell a guest bug from a host-side stall of a vCPU thread.

    tests/soak/stall_watch.py OUT_FILE [--interval S] [--history N]

Once a second (--interval), for each running qemu-system-* process: the state, kernel wait
channel and CPU time of each of its threads (named "CPU 0/TCG", "CPU 1/TCG", ... by fcvm's
debug-threads=on), kept for the last N samples (--history, default 60), and any new line of its
serial console (the `-chardev file,...,path=` of fcvm's command line) that reports a soft or hard
lockup, an RCU stall or a hung task, and any line of the VM's monitor.log (beside the console)
where the monitor gives up on a silent boot ("hung boot: vCPU N: RIP=...", "booting again"). For
each such line, OUT_FILE gets one JSON object: the line,
the time, the host's load average and pressure (PSI), and the thread history of that QEMU, so a
vCPU thread that made no progress (state R starved, D blocked in the host kernel, S waiting on a
lock) shows next to the guest's report. Runs until killed; meant to run beside `make test` or
tests/soak/tcg_lockup.sh. Reads /proc only (root sees every process).
"""
import argparse
import collections
import json
import os
import re
import time

HANG = re.compile(
    r"soft lockup|hard LOCKUP|rcu_\w+ (self-)?detected stall|rcu: INFO: .*stall|"
    r"blocked for more than \d+ seconds|BUG: |Kernel panic"
)
KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\] ")  # printk's time stamp: not the agent's lines
CONSOLE = re.compile(r"^file,id=console,path=((?:[^,]|,,)+)$")
MONITOR = re.compile(r"hung boot: |booting again")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def qemu_processes():
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        cmd = read(f"/proc/{pid}/cmdline")
        if not cmd:
            continue
        argv = cmd.split("\0")
        if os.path.basename(argv[0]).startswith("qemu-system"):
            yield int(pid), argv


def threads(pid):
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        stat = read(f"/proc/{pid}/task/{tid}/stat")
        if not stat:
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        state, utime, stime = fields[0], int(fields[11]), int(fields[12])
        wchan = (read(f"/proc/{pid}/task/{tid}/wchan") or "").strip()
        out.append({"tid": int(tid), "name": comm, "state": state, "wchan": wchan,
                    "cpu_ticks": utime + stime})
    return out


def new_lines(path, offsets, key):
    try:
        with open(path, "rb") as f:
            f.seek(offsets.get(key, 0))
            new = f.read()
            offsets[key] = f.tell()
    except OSError:
        return []
    return new.decode("utf-8", "replace").splitlines()


def host_state():
    state = {"loadavg": (read("/proc/loadavg") or "").strip()}
    for kind in ("cpu", "io", "memory"):
        text = read(f"/proc/pressure/{kind}")
        if text:
            state[f"psi_{kind}"] = " | ".join(text.strip().splitlines())
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--history", type=int, default=60)
    args = ap.parse_args()
    histories = {}  # pid -> deque of (time, threads)
    offsets = {}  # (pid, file) -> bytes of it already read
    dirs = {}  # pid -> (the VM's directory, its name)

    def report(now, pid, name, line):
        record = {"time": round(now, 1), "pid": pid, "vm": name, "line": line.strip(),
                  "host": host_state(), "threads": list(histories.get(pid, []))}
        with open(args.out, "a") as out:
            out.write(json.dumps(record) + "\n")

    def monitor_lines(now, pid):
        vm_dir, name = dirs[pid]
        # Keyed by directory: a VM booted again keeps its monitor.log under a new QEMU.
        for line in new_lines(os.path.join(vm_dir, "monitor.log"), offsets, (vm_dir, "monitor")):
            if MONITOR.search(line):
                report(now, pid, name, line)

    while True:
        now = time.time()
        running = dict(qemu_processes())
        # QEMUs gone since the last pass first: the monitor writes where a hung boot's vCPUs were
        # just before it kills that QEMU, maybe already booting the next one in the same
        # directory, and the line belongs with the history of the QEMU it was about.
        for pid in [p for p in histories if p not in running]:
            if pid in dirs:
                monitor_lines(now, pid)
                dirs.pop(pid)
            histories.pop(pid)
            offsets.pop((pid, "console"), None)
        for pid, argv in running.items():
            hist = histories.setdefault(pid, collections.deque(maxlen=args.history))
            hist.append((round(now, 1), threads(pid)))
            m = next((c for c in map(CONSOLE.match, argv) if c), None)
            if not m:
                continue
            console = m.group(1).replace(",,", ",")
            name = next((a for a in argv if a.startswith("fcvm-")), str(pid)).split(",")[0]
            dirs[pid] = (os.path.dirname(console), name)
            for line in new_lines(console, offsets, (pid, "console")):
                if KERNEL_LINE.match(line) and HANG.search(line):
                    report(now, pid, name, line)
            monitor_lines(now, pid)
        time.sleep(args.interval)

if __name__ == "__main__":
    main()
