"""A client for the fcvm HTTP API (``fcvm serve``): microVMs that run OCI containers.

Standard library only. The API is described in fcvm's docs/api.yaml; every object this client
returns carries the server's JSON in ``.info`` (the same objects ``fcvm inspect`` prints).

    from fcvm_client import Client
    vm = Client().run("oci-archive:/srv/busybox.oci.tar", cmd=["sleep", "600"], name="box")
    print(vm.exec(["echo", "hi"]).stdout)      # b'hi\\n'
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

__all__ = [
    "ApiError",
    "Client",
    "Vm",
    "Snapshot",
    "ExecResult",
    "ExecStream",
    "Output",
    "LogLine",
    "default_address",
]

Json = Dict[str, Any]


class ApiError(Exception):
    """An error the server answered: HTTP status, fcvm's error code and its message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass
class Output:
    """A piece of an exec's output as it came: stream is "stdout" or "stderr"."""

    stream: str
    data: bytes


@dataclass
class LogLine:
    stream: str  # "stdout" or "stderr" ("console" for the serial console)
    text: str
    time: Optional[str] = None  # RFC 3339, with timestamps=True
    partial: bool = False  # a line the container had not ended yet


def default_address() -> str:
    """$FCVM_API, else the socket `fcvm serve` uses by default for this user."""
    if os.environ.get("FCVM_API"):
        return os.environ["FCVM_API"]
    if os.geteuid() == 0:
        return "unix:/run/fcvm/api.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return f"unix:{runtime}/fcvm/api.sock"
    data = os.environ.get("FCVM_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "fcvm")
    return f"unix:{data}/api.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: Optional[float]) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _raise_for(status: int, body: bytes) -> None:
    try:
        err = json.loads(body)["error"]
        raise ApiError(status, err.get("code", "unknown"), err.get("message", ""))
    except (ValueError, KeyError, TypeError):
        raise ApiError(status, "http", body.decode(errors="replace").strip()) from None


class Client:
    """A connection to ``fcvm serve``.

    address: "unix:/path/api.sock", "/path/api.sock" or "http://127.0.0.1:PORT" (default:
    default_address()). token: the bearer token for TCP (the server's api-token file).
    timeout: seconds for each socket operation (None: no limit; streams wait as long as the VM
    runs).
    """

    def __init__(self, address: Optional[str] = None, token: Optional[str] = None,
                 timeout: Optional[float] = 600.0) -> None:
        address = address or default_address()
        self._unix: Optional[str] = None
        self._host: Optional[Tuple[str, int]] = None
        if address.startswith("unix:") or address.startswith("/"):
            self._unix = address[5:] if address.startswith("unix:") else address
        else:
            parsed = urllib.parse.urlsplit(address if "//" in address else "http://" + address)
            if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
                raise ValueError(f"invalid address {address!r}: expected unix:PATH or "
                                 "http://HOST:PORT")
            self._host = (parsed.hostname, parsed.port)
        self._token = token
        self.timeout = timeout

    # --- transport ------------------------------------------------------------------------

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, timeout)
        assert self._host is not None
        return http.client.HTTPConnection(self._host[0], self._host[1], timeout=timeout)

    def _open(self, method: str, path: str, body: Union[None, bytes, Json] = None,
              query: Optional[Sequence[Tuple[str, str]]] = None,
              timeout: Optional[float] = None) -> Tuple[http.client.HTTPConnection,
                                                         http.client.HTTPResponse]:
        if query:
            path += "?" + urllib.parse.urlencode(list(query))
        headers = {}
        data: Optional[bytes] = None
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
            headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "DELETE"):
            data = b""  # an explicit empty body (Content-Length: 0)
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        conn = self._connection(timeout if timeout is not None else self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        if resp.status >= 400:
            payload = resp.read()
            conn.close()
            _raise_for(resp.status, payload)
        return conn, resp

    def _call(self, method: str, path: str, body: Union[None, bytes, Json] = None,
              query: Optional[Sequence[Tuple[str, str]]] = None,
              timeout: Optional[float] = None) -> Any:
        conn, resp = self._open(method, path, body, query, timeout)
        try:
            payload = resp.read()
        finally:
            conn.close()
        if resp.status == 204 or not payload:
            return None
        if resp.getheader("Content-Type", "").startswith("application/json"):
            return json.loads(payload)
        return payload.decode()

    def _stream(self, method: str, path: str, body: Union[None, Json] = None,
                query: Optional[Sequence[Tuple[str, str]]] = None) -> Iterator[Json]:
        """The lines of an NDJSON response as they come (blank keep-alive lines skipped)."""
        conn, resp = self._open(method, path, body, query, timeout=None)
        try:
            while True:
                line = resp.readline()
                if not line:
                    return
                line = line.strip()
                if line:
                    yield json.loads(line)
        finally:
            conn.close()

    # --- the server ---------------------------------------------------------------------------

    def ping(self) -> bool:
        return self._call("GET", "/v1/_ping") == "OK"

    def version(self) -> Json:
        return self._call("GET", "/v1/version")

    # --- VMs -------------------------------------------------------------------------------

    def run(self, image: str, cmd: Optional[Sequence[str]] = None, *,
            name: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
            publish: Optional[Sequence[str]] = None, labels: Optional[Mapping[str, str]] = None,
            mem: Optional[int] = None, cpu: Optional[int] = None,
            wait_ready: Optional[str] = None, ttl: Optional[int] = None, rm: bool = False,
            **options: Any) -> "Vm":
        """Starts a VM running `image` (as `fcvm run -d`) and returns it once it is ready.

        Other keyword options are the API's create fields (docs/api.yaml): network, vmm,
        workdir, user, entrypoint, map, restart, stop_timeout, read_only, init, ulimits, ...
        """
        body: Json = {"image": image}
        for key, value in (("cmd", list(cmd) if cmd is not None else None), ("name", name),
                           ("env", dict(env) if env else None),
                           ("publish", list(publish) if publish else None),
                           ("labels", dict(labels) if labels else None), ("mem", mem),
                           ("cpu", cpu), ("wait_ready", wait_ready), ("ttl", ttl)):
            if value is not None:
                body[key] = value
        if rm:
            body["rm"] = True
        body.update(options)
        return Vm(self, self._call("POST", "/v1/vms", body))

    def vms(self, all: bool = False, labels: Optional[Mapping[str, str]] = None) -> List["Vm"]:
        """The VMs (running ones unless all), those with every given label value only."""
        query: List[Tuple[str, str]] = [("all", "1" if all else "0")]
        for k, v in (labels or {}).items():
            query.append(("label", f"{k}={v}"))
        return [Vm(self, info) for info in self._call("GET", "/v1/vms", query=query)]

    def vm(self, ref: str) -> "Vm":
        """A VM by name, id or unique id prefix."""
        return Vm(self, self._call("GET", f"/v1/vms/{urllib.parse.quote(ref, safe='')}"))

    # --- snapshots and images --------------------------------------------------------------------

    def snapshots(self) -> List["Snapshot"]:
        return [Snapshot(self, s) for s in self._call("GET", "/v1/snapshots")]

    def snapshot(self, ref: str) -> "Snapshot":
        return Snapshot(self, self._call("GET", f"/v1/snapshots/{urllib.parse.quote(ref, safe='')}"))

    def images(self) -> List[Json]:
        return self._call("GET", "/v1/images")

    # --- events ----------------------------------------------------------------------------

    def events(self, since: Optional[str] = None, until: Optional[str] = None,
               vm: Optional[str] = None, event: Optional[str] = None,
               stream: bool = True) -> Iterator[Json]:
        """Events as `fcvm events --json` prints them; since/until as it reads them (RFC 3339,
        unix seconds, 10m). Without stream, the past ones only."""
        query = [("stream", "1" if stream else "0")]
        for key, value in (("since", since), ("until", until), ("vm", vm), ("event", event)):
            if value is not None:
                query.append((key, value))
        return self._stream("GET", "/v1/events", query=query)


class Vm:
    """A VM as the server last described it (``info``; refresh() reads it again)."""

    def __init__(self, client: Client, info: Json) -> None:
        self._client = client
        self.info = info

    @property
    def id(self) -> str:
        return self.info["id"]

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def status(self) -> str:
        return self.info["state"]["status"]

    def __repr__(self) -> str:
        return f"Vm(name={self.name!r}, id={self.id[:12]!r}, status={self.status!r})"

    def _path(self, tail: str = "") -> str:
        return f"/v1/vms/{self.id}{tail}"

    def _update(self, info: Optional[Json]) -> "Vm":
        if info is not None:
            self.info = info
        return self

    def refresh(self) -> "Vm":
        return self._update(self._client._call("GET", self._path()))

    def start(self) -> "Vm":
        return self._update(self._client._call("POST", self._path("/start")))

    def stop(self, timeout: Optional[int] = None) -> "Vm":
        query = [("timeout", str(timeout))] if timeout is not None else None
        return self._update(self._client._call("POST", self._path("/stop"), query=query))

    def kill(self, signal: str = "KILL") -> "Vm":
        return self._update(self._client._call("POST", self._path("/kill"), {"signal": signal}))

    def pause(self) -> "Vm":
        return self._update(self._client._call("POST", self._path("/pause")))

    def resume(self) -> "Vm":
        return self._update(self._client._call("POST", self._path("/resume")))

    def set_ttl(self, seconds: int) -> "Vm":
        """Stops the VM `seconds` from now (0: never), also when no server runs."""
        return self._update(self._client._call("PUT", self._path("/ttl"), {"seconds": seconds}))

    def wait(self) -> Optional[int]:
        """Blocks until the VM is not running; its container's exit code."""
        return self._client._call("POST", self._path("/wait"), timeout=None)["exit_code"]

    def remove(self, force: bool = False) -> None:
        self._client._call("DELETE", self._path(), query=[("force", "1" if force else "0")])

    def logs(self, follow: bool = False, tail: Optional[int] = None,
             timestamps: bool = False) -> Iterator[LogLine]:
        """The container's output lines; with follow, until the VM ends."""
        query = [("follow", "1" if follow else "0"), ("timestamps", "1" if timestamps else "0")]
        if tail is not None:
            query.append(("tail", str(tail)))
        for j in self._client._stream("GET", self._path("/logs"), query=query):
            if "error" in j:
                raise ApiError(500, j["error"]["code"], j["error"]["message"])
            yield LogLine(j.get("stream", "console"), j["line"], j.get("time"),
                          bool(j.get("partial", False)))

    def exec_stream(self, cmd: Sequence[str], *, stdin: bool = False, tty: bool = False,
                    env: Optional[Mapping[str, str]] = None, workdir: Optional[str] = None,
                    user: Optional[str] = None, rows: Optional[int] = None,
                    cols: Optional[int] = None) -> "ExecStream":
        """Starts a command in the container; iterate the result for its output as it comes."""
        body: Json = {"cmd": list(cmd), "stdin": stdin, "tty": tty}
        if env:
            body["env"] = dict(env)
        if workdir:
            body["workdir"] = workdir
        if user:
            body["user"] = user
        if rows and cols:
            body["rows"], body["cols"] = rows, cols
        return ExecStream(self, self._client._stream("POST", self._path("/exec"), body))

    def exec(self, cmd: Sequence[str], stdin: Optional[bytes] = None, **kwargs: Any) -> ExecResult:
        """Runs a command in the container to its end: exit code, stdout and stderr."""
        stream = self.exec_stream(cmd, stdin=stdin is not None, **kwargs)
        if stdin is not None:
            stream.write_stdin(stdin, close=True)
        out, err = bytearray(), bytearray()
        for chunk in stream:
            (out if chunk.stream == "stdout" else err).extend(chunk.data)
        assert stream.exit_code is not None
        return ExecResult(stream.exit_code, bytes(out), bytes(err))

    def snapshot(self, name: str) -> "Snapshot":
        """Writes a snapshot of the running VM (memory, devices, disk); it runs on."""
        return Snapshot(self._client,
                        self._client._call("POST", self._path("/snapshots"), {"name": name}))


class ExecStream:
    """A running exec: iterate for Output; exit_code once the iteration ended."""

    def __init__(self, vm: Vm, lines: Iterator[Json]) -> None:
        self._vm = vm
        self._lines = lines
        first = next(lines)
        if "exec_id" not in first:
            raise ApiError(500, "protocol", f"unexpected first line {first!r}")
        self.exec_id: str = first["exec_id"]
        self.exit_code: Optional[int] = None

    def __iter__(self) -> Iterator[Output]:
        for j in self._lines:
            if "data" in j:
                yield Output(j["stream"], base64.b64decode(j["data"]))
            elif "exit_code" in j:
                if j.get("error"):
                    raise ApiError(500, j["error"]["code"], j["error"]["message"])
                self.exit_code = j["exit_code"]

    def _path(self, what: str) -> str:
        return self._vm._path(f"/exec/{self.exec_id}/{what}")

    def write_stdin(self, data: bytes, close: bool = False) -> None:
        query = [("close", "1")] if close else None
        self._vm._client._call("POST", self._path("stdin"), bytes(data), query=query)

    def close_stdin(self) -> None:
        self.write_stdin(b"", close=True)

    def signal(self, signal: str = "TERM") -> None:
        self._vm._client._call("POST", self._path("signal"), {"signal": signal})

    def resize(self, rows: int, cols: int) -> None:
        self._vm._client._call("POST", self._path("resize"), {"rows": rows, "cols": cols})


class Snapshot:
    def __init__(self, client: Client, info: Json) -> None:
        self._client = client
        self.info = info

    @property
    def name(self) -> str:
        return self.info["name"]

    @property
    def id(self) -> str:
        return self.info["id"]

    def __repr__(self) -> str:
        return f"Snapshot(name={self.name!r}, id={self.id[:12]!r})"

    def clone(self, name: Optional[str] = None, *, publish: Optional[Sequence[str]] = None,
              wait_ready: Optional[str] = None, labels: Optional[Mapping[str, str]] = None,
              ttl: Optional[int] = None, rm: bool = False) -> Vm:
        """A new VM resumed from this snapshot, returned once it is ready."""
        body: Json = {}
        for key, value in (("name", name), ("publish", list(publish) if publish else None),
                           ("wait_ready", wait_ready), ("labels", dict(labels) if labels else None),
                           ("ttl", ttl)):
            if value is not None:
                body[key] = value
        if rm:
            body["rm"] = True
        return Vm(self._client,
                  self._client._call("POST", f"/v1/snapshots/{self.id}/clone", body))

    def remove(self, force: bool = False) -> None:
        self._client._call("DELETE", f"/v1/snapshots/{self.id}",
                           query=[("force", "1" if force else "0")])
