#!/usr/bin/env python3
"""Drives a command on a pseudo-terminal of its own, as a person at a terminal would.

usage: pty_drive.py [rows=R] [cols=C] [timeout=S] STEP... -- COMMAND [ARG...]

STEP is one of
  raw          wait until the command put its terminal in raw mode (no canonical input)
  send=TEXT    type TEXT (Python escapes: \\r, \\x10 for ^P, ...)
  expect=TEXT  wait until the output so far holds TEXT
Steps run in order; then the command is waited for. The output (carriage returns removed) goes
to stdout; the exit code is the command's, 124 when a step or the command timed out, with what
was awaited on stderr.
"""
import fcntl
import os
import select
import struct
import subprocess
import sys
import termios
import time


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    cut = argv.index("--")
    settings, command = argv[:cut], argv[cut + 1:]
    rows, cols, timeout = 24, 80, 180.0
    steps = []
    for item in settings:
        key, _, value = item.partition("=")
        if key == "rows":
            rows = int(value)
        elif key == "cols":
            cols = int(value)
        elif key == "timeout":
            timeout = float(value)
        elif key in ("send", "expect"):
            steps.append((key, value.encode().decode("unicode_escape").encode("latin-1")))
        elif key == "raw":
            steps.append(("raw", b""))
        else:
            sys.exit(f"pty_drive.py: unknown step {item!r}")

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def controlling_terminal():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=controlling_terminal)
    os.close(slave)
    deadline = time.monotonic() + timeout
    output = bytearray()
    closed = False

    def pump(wait):
        nonlocal closed
        if closed:
            time.sleep(wait)
            return
        ready, _, _ = select.select([master], [], [], wait)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the terminal closed it
                data = b""
            if data:
                output.extend(data)
            else:
                closed = True

    def give_up(what):
        proc.kill()
        proc.wait()
        sys.stdout.write(output.decode(errors="replace").replace("\r", ""))
        sys.stderr.write(f"pty_drive.py: timed out waiting for {what}\n")
        sys.exit(124)

    for kind, text in steps:
        if kind == "send":
            os.write(master, text)
            continue
        while True:
            if kind == "raw" and not termios.tcgetattr(master)[3] & termios.ICANON:
                break
            if kind == "expect" and text in output:
                break
            if time.monotonic() > deadline:
                give_up(f"{kind} {text!r}")
            if proc.poll() is not None and closed:
                give_up(f"{kind} {text!r} (the command ended with {proc.returncode})")
            pump(0.05)
    while proc.poll() is None or not closed:
        if time.monotonic() > deadline:
            give_up("the command's end")
        pump(0.05)
    sys.stdout.write(output.decode(errors="replace").replace("\r", ""))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
