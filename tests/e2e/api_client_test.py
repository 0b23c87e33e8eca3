"""The Python client (clients/python) against a real `fcvm serve` (FCVM_API) on real VMs.

Run by tests/e2e/test_api.sh, which starts the server; BUSYBOX is the test image's archive.
"""

import os
import threading
import unittest

from fcvm_client import ApiError, Client


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.client = Client(os.environ["FCVM_API"])
        cls.image = "oci-archive:" + os.environ["BUSYBOX"]

    def test_lifecycle(self) -> None:
        c = self.client
        self.assertTrue(c.ping())
        self.assertEqual(c.version()["api"], "v1")
        with self.assertRaises(ApiError) as bad:
            c.run(self.image, mem="lots")
        self.assertEqual((bad.exception.status, bad.exception.code), (400, "invalid_input"))
        self.assertIn("lots", bad.exception.message)

        vm = c.run(self.image, ["sh", "-c", "echo ready; while sleep 0.2; do echo tick; done"],
                   name="p1", labels={"suite": "py"}, stop_timeout=1,
                   wait_ready="mode=log,pattern=ready")
        self.assertEqual(vm.status, "running")
        self.assertEqual([v.id for v in c.vms(labels={"suite": "py"})], [vm.id])
        self.assertEqual(c.vm("p1").id, vm.id)

        # exec: output, exit code; stdin; streamed output as it comes.
        r = vm.exec(["sh", "-c", "echo out; echo err >&2; exit 5"])
        self.assertEqual((r.exit_code, r.stdout, r.stderr), (5, b"out\n", b"err\n"))
        self.assertEqual(vm.exec(["cat"], stdin=b"abc\x00\xff").stdout, b"abc\x00\xff")
        stream = vm.exec_stream(["sh", "-c", "for i in 1 2 3; do echo $i; done"])
        self.assertEqual(b"".join(o.data for o in stream), b"1\n2\n3\n")
        self.assertEqual(stream.exit_code, 0)
        stream = vm.exec_stream(["sh", "-c", "echo started; exec sleep 600"])
        output = iter(stream)
        self.assertEqual(next(output).data, b"started\n")  # it runs: now the signal
        stream.signal("KILL")
        list(output)
        self.assertEqual(stream.exit_code, 137)

        # A terminal: its size at the start, and a resize while it runs.
        r = vm.exec(["stty", "size"], tty=True, rows=33, cols=111)
        self.assertEqual(r.stdout.strip(), b"33 111")
        stream = vm.exec_stream(["sh", "-c", "echo go; read line; stty size"], stdin=True, tty=True,
                                rows=24, cols=80)
        output = iter(stream)
        seen = b""
        while b"go" not in seen:
            seen += next(output).data
        stream.resize(40, 120)
        stream.write_stdin(b"\n")
        rest = b"".join(o.data for o in output)
        self.assertIn(b"40 120", rest)
        self.assertEqual(stream.exit_code, 0)

        # logs: follow ends when the VM ends (stopped from another thread).
        first = next(vm.logs(tail=100))
        self.assertEqual((first.stream, first.text), ("stdout", "ready"))
        followed = []

        def follow() -> None:
            for line in vm.logs(follow=True, timestamps=True):
                followed.append(line)

        t = threading.Thread(target=follow)
        t.start()

        # snapshot -> clone, which answers exec; the snapshot lists it.
        snap = vm.snapshot("ps1")
        clone = snap.clone("p2", ttl=600)
        self.assertIsNotNone(clone.info["state"]["expires_ms"])
        self.assertEqual(clone.exec(["echo", "from-clone"]).stdout, b"from-clone\n")
        self.assertIn("p2", [cl["name"] for cl in c.snapshot("ps1").info["clones"]])
        self.assertIn("ps1", [s.name for s in c.snapshots()])
        clone.pause()
        self.assertEqual(clone.status, "paused")
        clone.resume()
        self.assertEqual(clone.status, "running")

        vm.stop(timeout=1)
        t.join(60)
        self.assertFalse(t.is_alive(), "logs(follow=True) did not end with the VM")
        self.assertTrue(any(line.text == "tick" and line.time for line in followed))
        self.assertIsNotNone(vm.wait())
        events = [e["event"] for e in c.events(since="10m", vm="p1", stream=False)]
        self.assertEqual(events[0], "created")
        self.assertIn("exited", events)

        vm.remove()
        with self.assertRaises(ApiError) as gone:
            c.vm("p1")
        self.assertEqual(gone.exception.status, 404)
        snap.remove(force=True)  # and its clone with it
        with self.assertRaises(ApiError):
            c.vm("p2")


if __name__ == "__main__":
    unittest.main(verbosity=2)
