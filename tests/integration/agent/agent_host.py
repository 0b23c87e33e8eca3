"""The host side of the agent protocol (docs/agent-protocol.md) for the protocol tests: frames over
a Unix socket that a real fc-agent connects to, and small helpers shared by the scenarios."""
import collections
import json
import socket
import struct
import time

CONTROL, STDOUT, STDERR, STDIN, STDIN_EOF = 1, 2, 3, 4, 5


class Host:
    def __init__(self, listener):
        self.listener = listener
        self.conn = None
        self.buf = b""
        self.output = {}  # (stream, kind) -> bytes
        self.pending = collections.deque()  # control messages read while waiting for output
        self.agent = None

    def accept(self, timeout=10):
        self.listener.settimeout(timeout)
        self.conn, _ = self.listener.accept()
        self.conn.settimeout(timeout)
        self.buf = b""

    def send(self, kind, stream, payload):
        self.conn.sendall(struct.pack(">IBI", 5 + len(payload), kind, stream) + payload)

    def control(self, msg):
        self.send(CONTROL, 0, json.dumps(msg).encode())

    def frame(self):
        while True:
            if len(self.buf) >= 9:
                length, kind, stream = struct.unpack(">IBI", self.buf[:9])
                if len(self.buf) >= 4 + length:
                    payload = self.buf[9:4 + length]
                    self.buf = self.buf[4 + length:]
                    return kind, stream, payload
            data = self.conn.recv(65536)
            if not data:
                raise EOFError("agent closed the connection")
            self.buf += data

    def _read_one(self):
        """Reads one frame: output is collected, a control message is returned (else None)."""
        kind, stream, payload = self.frame()
        if kind == CONTROL:
            msg = json.loads(payload)
            print("  <-", json.dumps(msg)[:300])
            return msg
        self.output[(stream, kind)] = self.output.get((stream, kind), b"") + payload
        return None

    def message(self):
        """Next control message; output frames are collected on the way."""
        if self.pending:
            return self.pending.popleft()
        while True:
            msg = self._read_one()
            if msg is not None:
                return msg

    def wait_output(self, stream, text, kind=STDOUT):
        """Reads until the stream's output contains text; control messages are kept for later."""
        while text not in self.output.get((stream, kind), b""):
            msg = self._read_one()
            if msg is not None:
                self.pending.append(msg)

    def expect(self, mtype, **fields):
        """The next message of mtype, which must have these fields; events and logs that do not
        match are skipped, any other message is a failure."""
        while True:
            msg = self.message()
            if msg["type"] == mtype and all(msg.get(k) == v for k, v in fields.items()):
                return msg
            if msg["type"] in ("event", "log"):
                continue
            raise AssertionError(f"expected {mtype} {fields}, got {msg}")


def plan(**overrides):
    p = {
        "version": 1, "vm_id": "test0001", "name": "web1", "hostname": "web1",
        "image": {"ref": "127.0.0.1:5055/app:1", "insecure_registries": ["registry.lan:5000"],
                  "mirrors": [{"prefix": "127.0.0.1:5055", "location": "10.0.2.2:5055",
                               "insecure": True}]},
        "command": ["serve", "--port", "80"], "entrypoint": [], "env": ["A=1"], "workdir": "",
        "network": {"interface": "eth0", "address": "10.0.2.15/24", "gateway": "10.0.2.2",
                    "dns": ["10.0.2.3"], "mtu": 1500},
        "time_unix_ns": time.time_ns(), "stop_timeout_s": 2,
    }
    p.update(overrides)
    return {"type": "plan", "plan": p}


def check(cond, what):
    if not cond:
        raise AssertionError(what)
