#!/usr/bin/env python3
"""Chaos: random fcvm operations with a kill -9 of a random fcvm process at a random moment.

    chaos.py --fcvm BIN --kills N [--seed S] [--network rootless|privileged] [--vms K]

Each round does a few operations (run -d, foreground run, clone, snapshot create, stop, start,
rm) over at most K VMs; one of them runs beside a kill -9 of one live process of this data
directory, chosen at random: the CLI, a monitor, the VMM, slirp4netns, the namespace holder. Then:
  1. `fcvm ls` reconciles; every VM it shows running must still work (a stop succeeds);
  2. `fcvm rm -f` of every VM and `fcvm snapshot rm -f` of every snapshot;
  3. the host must be exactly as before the first round: no process, network namespace, link,
     nftables rule, /dev/shm file, mount, VM or snapshot directory, disk file or store row left.
Prints the kills done, what was killed, the leaks found (with the round) and the seed to replay.
Exit status 1 when anything leaked or a surviving VM did not work.

The VMM is whatever FCVM_FIRECRACKER_BIN names with --vmm firecracker (the tests use
fake-firecracker: every host-side resource is real, the guest is played). Needs root for
--network privileged.
"""
import argparse
import ctypes
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--fcvm", required=True)
p.add_argument("--kills", type=int, default=20)
p.add_argument("--seed", type=int, default=None)
p.add_argument("--network", default="rootless", choices=["rootless", "privileged"])
p.add_argument("--vms", type=int, default=3)
p.add_argument("--image", required=True, help="an image reference (oci-archive:PATH)")
args = p.parse_args()
seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
rng = random.Random(seed)
data = os.environ["FCVM_DATA_DIR"]
FCVM = args.fcvm


def fcvm(*argv, env=None, timeout=60, check=False):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([FCVM, *argv], env=e, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"fcvm {' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def ours(pid):
    """Is this live process one of this data directory's? (cmdline or environment)"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        if data in cmd:
            return cmd
        with open(f"/proc/{pid}/environ", "rb") as f:
            if f"FCVM_DATA_DIR={data}".encode() in f.read().split(b"\0"):
                return cmd
    except (OSError, IndexError):
        return None
    return None


def processes():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            cmd = ours(int(d))
            if cmd:
                out[int(d)] = cmd
    return out


def sh(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout


def host_state():
    """Everything fcvm may create, as comparable text."""
    s = {}
    s["processes"] = sorted(processes().values())
    s["netns"] = sorted(sh("ip netns list 2>/dev/null").split("\n"))
    s["links"] = sorted(l.split(":")[1].strip().split("@")[0]
                        for l in sh("ip -o link show").splitlines() if ":" in l)
    s["nft"] = sh("nft list ruleset 2>/dev/null") if os.geteuid() == 0 else ""
    s["shm"] = sorted(f for f in os.listdir("/dev/shm") if "fcvm" in f or data in f)
    s["mounts"] = sorted(l for l in open("/proc/self/mounts").read().splitlines() if data in l)
    files = []
    for root, dirs, names in os.walk(data):
        for n in dirs + names:
            path = os.path.relpath(os.path.join(root, n), data)
            # The store, the journal and the two top directories are the data directory's own.
            if not (path.startswith("state.db") or path.startswith("events.log") or
                    path in ("vms", "snapshots")):
                files.append(path)
    s["files"] = sorted(files)
    rows = {}
    db = os.path.join(data, "state.db")
    if os.path.exists(db):
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        for (table,) in c.execute("select name from sqlite_master where type='table'"):
            rows[table] = c.execute(f"select count(*) from {table}").fetchone()[0]
        c.close()
    s["rows"] = {t: n for t, n in rows.items() if n}
    return s


def diff(before, after):
    out = []
    for k in before:
        if before[k] != after[k]:
            if isinstance(before[k], list):
                extra = [x for x in after[k] if x not in before[k]]
                gone = [x for x in before[k] if x not in after[k]]
                out.append(f"{k}: left {extra}" + (f", gone {gone}" if gone else ""))
            else:
                out.append(f"{k}: {before[k]!r} -> {after[k]!r}"[:2000])
    return out


def names():
    return [n for n in fcvm("ls", "-a", "-q").stdout.split() if n]


def snapshots():
    return [n for n in fcvm("snapshot", "ls", "-q").stdout.split() if n]


counter = [0]


def new_name():
    counter[0] += 1
    return f"c{counter[0]}"


def op_command():
    """A random operation as (description, argv, env)."""
    vms = names()
    snaps = snapshots()
    base = ["--vmm", "firecracker", "--network", args.network]
    choices = ["run_d", "run_fg", "pull"]
    if vms:
        choices += ["stop", "start", "rm", "snapshot"]
    if snaps:
        choices += ["clone"]
    if len(vms) >= args.vms:
        choices = [c for c in choices if c not in ("run_d", "clone")] or ["rm"]
    c = rng.choice(choices)
    keep = {"FAKE_FC_RUN_UNTIL_STOP": "1"}
    if c == "run_d":
        return c, ["run", "-d", "--name", new_name(), *base, args.image], keep
    if c == "run_fg":
        return c, ["run", *base, args.image], {"FAKE_FC_RUN_UNTIL_STOP": "0"}
    if c == "pull":
        return c, ["pull", "-q", args.image], keep
    if c == "clone":
        return c, ["clone", "-d", "--name", new_name(), "--network", args.network,
                   "--snapshot", rng.choice(snaps)], keep
    if c == "snapshot":
        return c, ["snapshot", "create", rng.choice(vms), f"s{counter[0]}x{rng.randrange(1000)}"], keep
    if c == "stop":
        return c, ["stop", "-t", "2", rng.choice(vms)], keep
    if c == "start":
        return c, ["start", rng.choice(vms)], keep
    return c, ["rm", "-f", rng.choice(vms)], keep


_libc = ctypes.CDLL(None, use_errno=True)
SYS_KCMP, KCMP_VM = 312, 1  # x86_64


def shares_parents_memory(pid):
    """A clone of its parent sharing its address space: LeakSanitizer's tracer, which the asan
    build forks at exit to stop the process while it scans it (and a vfork child about to exec).
    Killing it leaves the sanitizer waiting for it for ever: a fault of the test build, not of
    fcvm, so it is no victim."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return False
    return _libc.syscall(SYS_KCMP, pid, ppid, KCMP_VM, 0, 0) == 0


def kind(cmd):
    exe = os.path.basename(cmd.split(" ", 1)[0])
    if "__monitor" in cmd:
        return "monitor/holder"
    if exe in ("fake-firecracker", "firecracker", "jailer") or exe.startswith("qemu"):
        return "vmm"
    if exe == "slirp4netns":
        return "slirp4netns"
    return "cli" if exe == "fcvm" else exe


def run_with_kill(argv, env):
    """Runs fcvm ARGV; at a random moment kills -9 one of the data directory's processes."""
    e = dict(os.environ)
    e.update(env)
    proc = subprocess.Popen([FCVM, *argv], env=e, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    delay = rng.uniform(0.0, 1.5)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    candidates = {p: c for p, c in processes().items() if not shares_parents_memory(p)}
    victim = None
    if candidates:
        pid = rng.choice(sorted(candidates))
        victim = (pid, kind(candidates[pid]))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            victim = None
    try:
        proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        # What was left waiting, and on what: the data directory's processes as the host sees them.
        waiting = []
        for pid, cmd in sorted(processes().items()):
            try:
                with open(f"/proc/{pid}/wchan") as f:
                    wchan = f.read().strip()
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                waiting.append(f"{pid} (parent {fields[1]}, {fields[0]} in {wchan or '-'}): {cmd[:160]}")
            except (OSError, IndexError):
                continue
        proc.kill()
        _, err = proc.communicate()
        return victim, ("the command hung (> 120 s) after the kill"
                        f" (command pid {proc.pid}; its stderr: {err.strip()[-300:]!r}; processes: "
                        + "; ".join(waiting) + ")")
    return victim, None


# The image store is a cache that outlives VMs: the image is stored before the baseline, so that
# runs find it there and a killed pull's debris (work directory, unrecorded disk) shows as a leak.
pulled = fcvm("pull", "-q", args.image)
if pulled.returncode != 0:
    sys.exit(f"chaos: cannot pull {args.image}: {pulled.stderr}")
baseline = host_state()
# The detector itself: a file, a /dev/shm file and (as root) a link left on purpose are seen.
probe_file = os.path.join(data, "vms", "chaos-probe")
os.makedirs(os.path.dirname(probe_file), exist_ok=True)
for stale in (probe_file, "/dev/shm/fcvm-chaos-probe"):  # from an interrupted run
    if os.path.exists(stale):
        os.unlink(stale)
if os.geteuid() == 0:
    subprocess.run(["ip", "link", "del", "fcvmchaos0"], capture_output=True)
baseline = host_state()
open(probe_file, "w").close()
open("/dev/shm/fcvm-chaos-probe", "w").close()
if os.geteuid() == 0:
    subprocess.run(["ip", "link", "add", "fcvmchaos0", "type", "veth", "peer", "name", "fcvmchaos1"],
                   check=True)
seen = diff(baseline, host_state())
os.unlink(probe_file)
os.unlink("/dev/shm/fcvm-chaos-probe")
if os.geteuid() == 0:
    subprocess.run(["ip", "link", "del", "fcvmchaos0"], check=True)
want = 3 if os.geteuid() == 0 else 2  # files, shm (and links)
if len(seen) != want or diff(baseline, host_state()):
    sys.exit(f"chaos: the leak detector does not see planted leaks: {seen}")
kills = 0
leaks = []
broken = []
killed = {}
rounds = 0
t0 = time.monotonic()
while kills < args.kills:
    rounds += 1
    # Some operations without a kill, to reach states worth killing in.
    for _ in range(rng.randrange(0, 3)):
        desc, argv, env = op_command()
        fcvm(*argv, env=env, timeout=120)
    desc, argv, env = op_command()
    victim, hung = run_with_kill(argv, env)
    if hung:
        broken.append(f"round {rounds}: {desc} (killed {victim}): {hung}")
    if victim:
        kills += 1
        killed[victim[1]] = killed.get(victim[1], 0) + 1
    # 1. Reconcile; a VM listed as running still works.
    for line in fcvm("ls", "-q", timeout=120).stdout.split():
        r = fcvm("stop", "-t", "2", line, timeout=120)
        # A foreground run whose client was killed is being stopped and removed by its own
        # monitor (auto-remove): gone by now is what it should do.
        if r.returncode != 0 and line in names():
            broken.append(f"round {rounds} ({desc}, killed {victim}): running VM {line} "
                          f"did not stop: {r.stderr.strip()}")
    # 2. Remove everything.
    for n in names():
        r = fcvm("rm", "-f", n, timeout=120)
        if r.returncode != 0:
            broken.append(f"round {rounds}: rm -f {n}: {r.stderr.strip()}")
    for s in snapshots():
        r = fcvm("snapshot", "rm", "-f", s, timeout=120)
        if r.returncode != 0:
            broken.append(f"round {rounds}: snapshot rm -f {s}: {r.stderr.strip()}")
    # 3. The host as it was (helpers may take a moment to exit after their owner died).
    deadline = time.monotonic() + 10
    while True:
        d = diff(baseline, host_state())
        if not d or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if d:
        leaks.append(f"round {rounds} ({desc} {' '.join(argv)}, killed {victim}): " + "; ".join(d))
        baseline = host_state()  # report each leak once
    print(f"round {rounds}: {desc}, killed {victim[1] if victim else 'nothing'}: "
          f"{'LEAK' if d else 'clean'}", flush=True)

print(f"chaos: seed {seed}, network {args.network}, {rounds} rounds, {kills} kills "
      f"({', '.join(f'{k} {v}' for k, v in sorted(killed.items()))}), "
      f"{len(leaks)} leaks, {len(broken)} failures, {time.monotonic() - t0:.0f} s")
for l in leaks:
    print("LEAK: " + l)
for b in broken:
    print("FAILED: " + b)
sys.exit(1 if leaks or broken else 0)
