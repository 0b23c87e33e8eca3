#!/usr/bin/env python3
"""Writes an OCI archive: a base image's layers plus two layers of our own whose second one
deletes a file of the first (a whiteout, .wh.NAME), replaces a directory opaquely
(.wh..wh..opq), and adds a hard link and a symlink that points out of the root.

usage: make_layered_image.py BASE.oci.tar OUT.oci.tar

What the container must see (tests/e2e/test_image_store.sh checks it in a VM):
  /layers/kept          "kept"          (first layer, untouched)
  /layers/gone          absent          (whited out by the second layer)
  /layers/dir/new       "new"           (the directory replaced opaquely...)
  /layers/dir/old       absent          (...so the first layer's entry is hidden)
  /layers/hard          2 links, "kept" (a hard link to /layers/kept)
  /layers/escape        a symlink to ../../../../etc/hostname, kept as a symlink
  /layers/owned         owned by 1234:5678, mode 0640
The config runs it as USER app (uid 1234, group 5678, home /home/app, also in group 4321) in
/layers, with FROM_IMAGE=1 in its environment; /etc/group is a symlink out of the root
(../../../../etc/app-group), which must resolve inside it.
"""
import hashlib
import io
import json
import sys
import tarfile


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.linkname = link
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def main(base_path, out_path):
    with tarfile.open(base_path) as base:
        blobs = {m.name: base.extractfile(m).read() for m in base.getmembers() if m.isfile()}
    index = json.loads(blobs["index.json"])
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads(blobs["blobs/sha256/" + manifest_digest.split(":")[1]])
    config = json.loads(blobs["blobs/sha256/" + manifest["config"]["digest"].split(":")[1]])

    lower = tar_bytes([
        entry("layers", tarfile.DIRTYPE, mode=0o755),
        entry("layers/kept", data=b"kept\n"),
        entry("layers/gone", data=b"gone\n"),
        entry("layers/dir", tarfile.DIRTYPE, mode=0o755),
        entry("layers/dir/old", data=b"old\n"),
    ])
    upper = tar_bytes([
        entry("layers", tarfile.DIRTYPE, mode=0o755),
        entry("layers/.wh.gone"),
        entry("layers/dir", tarfile.DIRTYPE, mode=0o755),
        entry("layers/dir/.wh..wh..opq"),
        entry("layers/dir/new", data=b"new\n"),
        entry("layers/hard", tarfile.LNKTYPE, link="layers/kept"),
        entry("layers/escape", tarfile.SYMTYPE, link="../../../../etc/hostname"),
        entry("layers/owned", data=b"owned\n", mode=0o640, uid=1234, gid=5678),
        entry("etc", tarfile.DIRTYPE, mode=0o755),
        entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:5678:app:/home/app:/bin/sh\n"),
        entry("etc/app-group", data=b"root:x:0:\napp:x:5678:\nextra:x:4321:other,app\n"),
        entry("etc/group", tarfile.SYMTYPE, link="../../../../etc/app-group"),
    ])
    container = config.setdefault("config", {})
    container["User"] = "app"
    container["WorkingDir"] = "/layers"
    container["Env"] = container.get("Env", []) + ["FROM_IMAGE=1"]
    out_blobs = dict(blobs)
    for layer in (lower, upper):
        digest = sha(layer)
        out_blobs["blobs/sha256/" + digest.split(":")[1]] = layer
        manifest["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                   "digest": digest, "size": len(layer)})
        config["rootfs"]["diff_ids"].append(digest)
    config_bytes = json.dumps(config).encode()
    manifest["config"] = {"mediaType": "application/vnd.oci.image.config.v1+json",
                          "digest": sha(config_bytes), "size": len(config_bytes)}
    manifest_bytes = json.dumps(manifest).encode()
    out_blobs["blobs/sha256/" + sha(config_bytes).split(":")[1]] = config_bytes
    out_blobs["blobs/sha256/" + sha(manifest_bytes).split(":")[1]] = manifest_bytes
    index["manifests"] = [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": sha(manifest_bytes), "size": len(manifest_bytes)}]
    out_blobs["index.json"] = json.dumps(index).encode()
    with tarfile.open(out_path, "w") as out:
        for name, data in sorted(out_blobs.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
