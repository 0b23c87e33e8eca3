#!/usr/bin/env python3
"""Plays the host side of the agent protocol (docs/agent-protocol.md) against a real fc-agent
binary that runs on this machine with --channel unix:SOCKET --root DIR --no-system and fake
podman/ip/conmon commands first in PATH. One scenario per invocation (here or in
exec_scenarios.py); exit status 0 = passed."""
import os
import shutil
import socket
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import exec_scenarios  # noqa: E402
from agent_host import STDERR, STDIN, STDIN_EOF, STDOUT, Host, check, plan  # noqa: E402

def main():
    scenario, agent_bin, work = sys.argv[1], sys.argv[2], sys.argv[3]
    fake = os.path.join(work, "fake")
    root = os.path.join(work, "root")
    for d in (fake, root):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    for tool, name in (("fake-podman", "podman"), ("fake-ip", "ip"), ("fake-conmon", "conmon")):
        dst = os.path.join(bindir, name)
        if not os.path.exists(dst):
            os.symlink(os.path.join(here, tool), dst)
    sock_path = os.path.join(work, "agent.sock")
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(1)
    env = dict(os.environ, FAKE_DIR=fake, PATH=bindir + ":" + os.environ["PATH"])
    log = open(os.path.join(work, f"agent-{scenario}.log"), "w")
    agent = subprocess.Popen([agent_bin, "--channel", "unix:" + sock_path, "--root", root,
                              "--no-system"], env=env, stdout=log, stderr=log)
    host = Host(listener)
    host.agent = agent
    try:
        name = "scenario_" + scenario
        run = globals().get(name) or getattr(exec_scenarios, name)
        run(host, fake, root)
        rc = agent.wait(timeout=20)
        check(rc == 0, f"agent exit status {rc}")
    finally:
        if agent.poll() is None:
            agent.kill()
        log.close()
    print(f"scenario {scenario}: passed")


def scenario_run(host, fake, root):
    """Registry image pulled, container runs and exits 3: the whole happy path."""
    host.accept()
    hello = host.expect("hello")
    check(hello["version"] == 1 and hello["agent"].startswith("fc-agent "), hello)
    check(hello["state"] == "waiting_plan", hello)
    host.control(plan())
    names = []
    while True:
        msg = host.message()
        if msg["type"] == "event":
            names.append(msg["name"])
            check(msg["uptime_ms"] > 0, msg)
        elif msg["type"] == "ready":
            break
        elif msg["type"] != "log":
            raise AssertionError(msg)
    check(names == ["network_ready", "image_ready", "container_started"], names)
    host.expect("exit", stream=0, code=3)
    host.expect("log")
    check(host.output.get((0, STDOUT)) == b"hello from the container\n", host.output)
    check(host.output.get((0, STDERR)) == b"a warning\n", host.output)
    podman = open(os.path.join(fake, "podman.log")).read()
    check("podman image exists 127.0.0.1:5055/app:1\n" in podman, podman)
    check("podman pull --quiet 127.0.0.1:5055/app:1\n" in podman, podman)
    check("podman run --name fcvm-main --replace --network host --sdnotify=conmon --pull=never "
          "-e A=1 127.0.0.1:5055/app:1 serve --port 80\n" in podman, podman)
    ip = open(os.path.join(fake, "ip.log")).read()
    check(ip == "ip link set lo up\nip link set eth0 mtu 1500 up\n"
               "ip addr replace 10.0.2.15/24 dev eth0\n"
               "ip route replace default via 10.0.2.2 dev eth0\n", ip)
    conf = open(os.path.join(root, "etc/containers/registries.conf.d/50-fcvm.conf")).read()
    check('prefix = "127.0.0.1:5055"\nlocation = "10.0.2.2:5055"\ninsecure = true' in conf, conf)
    check('location = "registry.lan:5000"\ninsecure = true' in conf, conf)
    check(open(os.path.join(root, "etc/resolv.conf")).read().endswith("nameserver 10.0.2.3\n"), "")
    check("10.0.2.15\tweb1\n" in open(os.path.join(root, "etc/hosts")).read(), "hosts")


def scenario_archive_reconnect_exec_stop(host, fake, root):
    """Archive disk (device load fails, copy succeeds), reconnect, exec, stop."""
    os.makedirs(os.path.join(root, "sys/block/vda"))
    os.makedirs(os.path.join(root, "sys/block/vdb"))
    os.makedirs(os.path.join(root, "dev"))
    os.makedirs(os.path.join(root, "var/tmp"))
    open(os.path.join(root, "sys/block/vda/serial"), "w").write("fcvm-root")
    open(os.path.join(root, "sys/block/vdb/serial"), "w").write("fcvm-image\n")
    open(os.path.join(root, "dev/vdb"), "wb").write(b"t" * 3000 + b"\0" * 5000)
    open(os.path.join(fake, "run-until-stopped"), "w").close()
    host.accept()
    host.expect("hello")
    host.control(plan(image={"ref": "", "archive": {"serial": "fcvm-image",
                                                   "format": "docker-archive", "size": 3000}}))
    event = host.expect("event", name="image_ready")
    check(event["detail"] == "localhost/fake:3000", event)  # exactly `size` bytes were copied
    host.expect("ready")
    check(not os.path.exists(os.path.join(root, "var/tmp/fcvm-image.tar")), "copy not removed")
    # The host goes away and comes back: a fresh hello, no second container.
    host.conn.close()
    host.accept()
    hello = host.expect("hello")
    check(hello["state"] == "running", hello)
    host.control(plan())
    host.expect("ready")
    # The host may also ask for a hello on a connection it is unsure about.
    host.control({"type": "hello", "version": 1, "agent": "fcvm test", "uptime_ms": 0})
    check(host.expect("hello")["state"] == "running", "hello on request")
    # exec in the VM with stdin, and in the container.
    host.control({"type": "exec", "stream": 1, "argv": ["cat"], "in_vm": True})
    host.send(STDIN, 1, b"abc")
    host.send(STDIN, 1, b"def\n")
    host.send(STDIN_EOF, 1, b"")
    host.expect("exit", stream=1, code=0)
    check(host.output.get((1, STDOUT)) == b"abcdef\n", host.output)
    host.control({"type": "exec", "stream": 2, "argv": ["sh", "-c", "echo in-ctr; exit 4"]})
    host.expect("exit", stream=2, code=4)
    check(host.output.get((2, STDOUT)) == b"in-ctr\n", host.output)
    host.control({"type": "exec", "stream": 3, "argv": ["/nonexistent/cmd"], "in_vm": True})
    err = host.expect("exec_error", stream=3)
    check("/nonexistent/cmd" in err["message"], err)
    host.expect("exit", stream=3, code=127)
    check((3, STDERR) not in host.output, host.output)
    host.control({"type": "stop", "timeout_s": 1})
    host.expect("exit", stream=0, code=143)
    podman = open(os.path.join(fake, "podman.log")).read()
    check("podman stop -t 1 fcvm-main\n" in podman, podman)
    check("podman run --name fcvm-main --replace --network host --sdnotify=conmon --pull=never "
          "-e A=1 localhost/fake:3000 serve --port 80\n" in podman, podman)
    check(podman.count("podman run ") == 1, podman)


def scenario_pull_fails(host, fake, root):
    """A failing stage answers with error (podman's stderr verbatim) and powers off."""
    open(os.path.join(fake, "pull-fails"), "w").close()
    host.accept()
    host.expect("hello")
    host.control(plan())
    err = host.expect("error")
    check(err["stage"] == "image", err)
    check("connection refused" in err["message"] and "podman pull" in err["message"], err)


def scenario_run_fails(host, fake, root):
    open(os.path.join(fake, "image-present"), "w").close()
    open(os.path.join(fake, "run-fails"), "w").close()
    host.accept()
    host.expect("hello")
    host.control(plan())
    err = host.expect("error")
    check(err["stage"] == "container" and "no such entrypoint" in err["message"], err)


def scenario_stop_early(host, fake, root):
    """stop before any plan: exit 143 at once."""
    host.accept()
    host.expect("hello")
    host.control({"type": "stop", "timeout_s": 5})
    host.expect("exit", stream=0, code=143)


def scenario_sigterm(host, fake, root):
    """SIGTERM to the agent (catatonit forwards PID 1's signals) stops the container like `stop`."""
    open(os.path.join(fake, "image-present"), "w").close()
    open(os.path.join(fake, "run-until-stopped"), "w").close()
    host.accept()
    host.expect("hello")
    host.control(plan())
    host.expect("ready")
    host.agent.terminate()
    host.expect("exit", stream=0, code=143)
    podman = open(os.path.join(fake, "podman.log")).read()
    check("podman stop -t 2 fcvm-main\n" in podman, podman)  # the plan's stop_timeout_s


def scenario_bad_version(host, fake, root):
    host.accept()
    host.expect("hello")
    p = plan()
    p["plan"]["version"] = 2
    host.control(p)
    err = host.expect("error")
    check(err["stage"] == "protocol" and "version 2" in err["message"], err)


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, EOFError, socket.timeout, subprocess.TimeoutExpired) as e:
        print(f"FAILED: {type(e).__name__}: {e}")
        sys.exit(1)
