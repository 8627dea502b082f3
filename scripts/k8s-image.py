#!/usr/bin/env python3
"""A root filesystem as a one-layer docker archive that `ctr images import`
takes: no registry, no image builder. Used by scripts/k8s-cluster.sh.

    k8s-image.py ROOTFS NAME OUT.tar [ENTRYPOINT]
"""
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile


def main():
    rootfs, name, out = sys.argv[1:4]
    entrypoint = sys.argv[4:5]
    with tempfile.TemporaryDirectory() as tmp:
        layer = os.path.join(tmp, "layer.tar")
        with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as t:
            for entry in sorted(os.listdir(rootfs)):
                t.add(os.path.join(rootfs, entry), arcname=entry)
        digest = sha256(layer)
        config = json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": entrypoint or None,
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + digest]},
        }).encode()
        config_name = hashlib.sha256(config).hexdigest() + ".json"
        manifest = json.dumps([{
            "Config": config_name,
            "RepoTags": [name],
            "Layers": [digest + "/layer.tar"],
        }]).encode()
        with tarfile.open(out, "w") as t:
            t.add(layer, arcname=digest + "/layer.tar")
            add_bytes(t, config_name, config)
            add_bytes(t, "manifest.json", manifest)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def add_bytes(t, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
