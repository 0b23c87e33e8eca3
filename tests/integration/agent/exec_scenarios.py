"""Exec scenarios of the agent protocol test (run by fake_host.py): tty sessions with resize,
end of input, signals, stdin/stdout/stderr of plain sessions, and refusals (exec_error)."""
import glob
import os
import shutil
import time

from agent_host import STDERR, STDIN, STDIN_EOF, STDOUT, check, plan


def start_container(host, fake):
    """Handshake and plan; returns once the (fake) container runs until stopped."""
    open(os.path.join(fake, "image-present"), "w").close()
    open(os.path.join(fake, "run-until-stopped"), "w").close()
    host.accept()
    host.expect("hello")
    host.control(plan())
    host.expect("ready")


def stop_container(host):
    host.control({"type": "stop", "timeout_s": 1})
    host.expect("exit", stream=0, code=143)


def wait_for_file(pattern, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = glob.glob(pattern)
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"no file {pattern}")


def gone(pid, timeout=5):
    """True once pid has exited (and is not a zombie waiting for its new parent)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def scenario_exec_tty(host, fake, root):
    """tty execs: a pty with the initial size, resize, a controlling terminal, ^D at stdin EOF."""
    start_container(host, fake)
    # In the container (podman exec -i -t): the command's stdin is a pty of the requested size.
    script = "tty; stty size; read line; echo got=$line; stty size"
    host.control({"type": "exec", "stream": 1, "argv": ["sh", "-c", script], "tty": True,
                  "rows": 24, "cols": 80})
    host.wait_output(1, b"24 80")
    check(b"/dev/pts/" in host.output[(1, STDOUT)], host.output)
    host.control({"type": "resize", "stream": 1, "rows": 30, "cols": 100})
    host.send(STDIN, 1, b"go\n")
    host.expect("exit", stream=1, code=0)
    out = host.output[(1, STDOUT)]
    check(b"got=go" in out and out.rstrip().endswith(b"30 100"), out)
    check((1, STDERR) not in host.output, "a terminal has no separate stderr")
    podman = open(os.path.join(fake, "podman.log")).read()
    check(f"podman exec -i -t fcvm-main sh -c {script}\n" in podman, podman)

    # In the VM: a session of its own whose controlling terminal is the pty (/dev/tty opens),
    # TERM defaults to xterm; stdin EOF after a partial line types ^D twice, which ends cat.
    script = "exec 3</dev/tty && echo ctty-ok; echo term=$TERM; stty size; cat; echo cat-done"
    host.control({"type": "exec", "stream": 2, "argv": ["sh", "-c", script], "tty": True,
                  "in_vm": True})
    host.wait_output(2, b"0 0\r\n")
    host.send(STDIN, 2, b"abc")
    host.send(STDIN_EOF, 2, b"")
    host.expect("exit", stream=2, code=0)
    out = host.output[(2, STDOUT)]
    check(b"ctty-ok\r\nterm=xterm\r\n0 0\r\n" in out, out)
    check(out.count(b"abc") == 2 and out.endswith(b"cat-done\r\n"), out)  # the echo, then cat

    # A resize for a stream without a terminal is logged, not fatal.
    host.control({"type": "exec", "stream": 3, "argv": ["cat"], "in_vm": True})
    host.control({"type": "resize", "stream": 3, "rows": 10, "cols": 10})
    msg = host.expect("log")
    check("no terminal" in msg["message"], msg)
    host.send(STDIN_EOF, 3, b"")
    host.expect("exit", stream=3, code=0)
    stop_container(host)


def scenario_exec_signal(host, fake, root):
    """signal: to the process podman exec started (found through its conmon), and in the VM."""
    start_container(host, fake)
    host.control({"type": "exec", "stream": 1,
                  "argv": ["sh", "-c", "sleep 30 & echo sleeper=$!; wait"]})
    pid_file = wait_for_file(os.path.join(fake, "exec-*.pid"))
    host.wait_output(1, b"\n")
    sleeper = int(host.output[(1, STDOUT)].split(b"=")[1])
    host.control({"type": "signal", "stream": 1, "signal": "TERM"})
    host.expect("exit", stream=1, code=143)
    # The (fake) conmon saw its child killed: the agent signalled the command, not podman exec,
    # and the command's child too (else it would hold the session's output open).
    check(open(pid_file + ".status").read().strip() == "143", "conmon's child was not signalled")
    check(gone(sleeper), f"the command's child {sleeper} survived")

    host.control({"type": "exec", "stream": 2, "argv": ["sleep", "30"], "in_vm": True})
    host.control({"type": "signal", "stream": 2, "signal": "INT"})
    host.expect("exit", stream=2, code=130)
    host.control({"type": "exec", "stream": 3, "argv": ["sleep", "30"], "in_vm": True,
                  "tty": True})
    host.control({"type": "signal", "stream": 3, "signal": 9})
    host.expect("exit", stream=3, code=137)
    host.control({"type": "signal", "stream": 3, "signal": "TERM"})  # ended: ignored
    host.control({"type": "exec", "stream": 4, "argv": ["sleep", "30"], "in_vm": True})
    host.control({"type": "signal", "stream": 4, "signal": "NOSUCH"})
    msg = host.expect("log")
    check("unknown signal 'NOSUCH'" in msg["message"], msg)
    host.control({"type": "signal", "stream": 4, "signal": "SIGKILL"})
    host.expect("exit", stream=4, code=137)
    stop_container(host)


def scenario_exec_pipes(host, fake, root):
    """Plain execs: stdin frames and stdin_eof, separate stdout and stderr, the exit code, and
    env/workdir/user handed to podman exec or applied in the VM."""
    start_container(host, fake)
    host.control({"type": "exec", "stream": 1, "argv": ["sh", "-c", "cat; echo err >&2; exit 5"],
                  "env": ["K=V"], "workdir": "/srv", "user": "web"})
    host.send(STDIN, 1, b"line 1\n")
    host.send(STDIN, 1, b"line 2")
    host.send(STDIN_EOF, 1, b"")
    host.expect("exit", stream=1, code=5)
    check(host.output.get((1, STDOUT)) == b"line 1\nline 2", host.output)
    check(host.output.get((1, STDERR)) == b"err\n", host.output)
    podman = open(os.path.join(fake, "podman.log")).read()
    check("podman exec -i -e K=V -w /srv -u web fcvm-main sh -c cat; echo err >&2; exit 5\n"
          in podman, podman)

    workdir = os.path.join(root, "work")
    os.makedirs(workdir)
    host.control({"type": "exec", "stream": 2, "argv": ["sh", "-c", "echo $K; pwd"],
                  "env": ["K=in-vm"], "workdir": workdir, "in_vm": True})
    host.expect("exit", stream=2, code=0)
    check(host.output.get((2, STDOUT)) == f"in-vm\n{workdir}\n".encode(), host.output)
    if os.geteuid() == 0 and shutil.which("setpriv"):
        host.control({"type": "exec", "stream": 3, "argv": ["sh", "-c", "id -u; id -g"],
                      "user": "65534:65533", "in_vm": True})
        host.expect("exit", stream=3, code=0)
        check(host.output.get((3, STDOUT)) == b"65534\n65533\n", host.output)
    else:
        print("  (in-VM user not checked: needs root and setpriv)")
    host.control({"type": "exec", "stream": 4, "argv": ["true"], "user": "web", "in_vm": True})
    err = host.expect("exec_error", stream=4)
    check("UID or UID:GID" in err["message"], err)
    host.expect("exit", stream=4, code=125)
    stop_container(host)


def scenario_exec_not_running(host, fake, root):
    """An exec in a container that does not run is refused with exec_error, then exit 125."""
    host.accept()
    host.expect("hello")
    host.control({"type": "exec", "stream": 7, "argv": ["true"]})
    err = host.expect("exec_error", stream=7)
    check("not running" in err["message"] and "no plan" in err["message"], err)
    host.expect("exit", stream=7, code=125)
    host.control({"type": "exec", "stream": 8, "argv": []})
    err = host.expect("exec_error", stream=8)
    check("empty argv" in err["message"], err)
    host.expect("exit", stream=8, code=125)
    # In the VM an exec needs no container.
    host.control({"type": "exec", "stream": 9, "argv": ["true"], "in_vm": True})
    host.expect("exit", stream=9, code=0)
    podman = os.path.join(fake, "podman.log")
    check(not os.path.exists(podman) or "exec" not in open(podman).read(), "podman exec ran")
    host.control({"type": "stop", "timeout_s": 1})
    host.expect("exit", stream=0, code=143)
