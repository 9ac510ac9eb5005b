"""The hostile test plugin (plugins/testing/hostile) in Python: misbehaves
as a `Hostile` resource's `spec.mode` says, in `assign`, so the sandbox is
tested against an interpreter too. Without a mode it behaves: AS 65000 for
every node."""

import encodings.idna  # noqa: F401  (socket's host names need it bundled)
import os
import socket
import time

from starling_plugin import Role, export, spec


def misbehave(mode, nodes):
    if mode == "loop":
        n = 0
        while True:
            n += 1
    if mode == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
    if mode == "exception":
        raise ValueError("hostile plugin asked to raise")
    if mode == "stack":
        def recurse(depth):
            return recurse(depth + 1) + 1
        recurse(0)
    if mode == "huge":
        return [(f"node-{i:08}", i) for i in range(2_000_000)]
    if mode == "print-flood":
        for i in range(2_000):
            print(f"hello from the sandbox {i}")
        return [(n, 65000) for n in nodes]
    if mode == "env":
        return [(" ".join(f"{k}={v}" for k, v in os.environ.items()), 1)]
    if mode == "file":
        try:
            with open("/etc/hostname") as f:
                return [(f.read(), 1)]
        except OSError:
            return [("", 1)]
    if mode == "net":
        try:
            socket.create_connection(("127.0.0.1", 179), timeout=1)
            return [("", 1)]
        except OSError:
            return [("", 0)]
    if mode == "clock":
        return [(str(time.time_ns()), 1)]
    if mode == "sleep":
        started = time.monotonic()
        time.sleep(3600)
        return [(str(round(time.monotonic() - started)), 1)]
    return None


class Hostile:
    roles = [Role.AS_ASSIGNMENT]

    def __init__(self, objects):
        self.mode = ""
        self.nodes_ = sorted(o.name for o in objects if o.kind == "Node")
        for o in objects:
            if o.kind == "Hostile":
                self.mode = spec(o).get("mode", "")

    def nodes(self):
        return self.nodes_

    def assign(self):
        answer = misbehave(self.mode, self.nodes_)
        if answer is None:
            return [(n, 65000) for n in self.nodes_]
        return answer


export(Hostile)
