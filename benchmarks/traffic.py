"""Bytes the driver sends and receives over TCP, from the kernel's per-socket counters (``ss -tinp``).

The driver is two processes, the Python interpreter and its JVM; traffic between them (py4j,
collected results handed to Python) is internal and not counted. Every other TCP socket either
process holds counts: task launches and results, broadcast pieces served to executors,
heartbeats, and sparkgd's resident channel. The counters live as long as a socket does, so
a measurement must be taken while the sockets it covers are open (between iterations).
"""

from __future__ import annotations

import os
import re
import subprocess

_USERS = re.compile(r"pid=(\d+)")
_SENT = re.compile(r"bytes_sent:(\d+)")
_RECEIVED = re.compile(r"bytes_received:(\d+)")


def _sockets() -> list[tuple[str, str, set[int], int, int]]:
    """``(local, peer, pids, bytes sent, bytes received)`` of every TCP socket of this user."""
    text = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout
    entries: list[str] = []
    for line in text.splitlines():
        if line[:1].isspace() and entries:
            entries[-1] += " " + line
        elif line.strip():
            entries.append(line)
    out = []
    for entry in entries:
        fields = entry.split()
        if len(fields) < 5:
            continue
        sent, received = _SENT.search(entry), _RECEIVED.search(entry)
        out.append((fields[3], fields[4], {int(p) for p in _USERS.findall(entry)},
                    int(sent.group(1)) if sent else 0, int(received.group(1)) if received else 0))
    return out


class DriverTraffic:
    """Snapshots of the driver's external TCP bytes ``(sent, received)``."""

    def __init__(self, sc) -> None:
        self.pids = {os.getpid(), int(sc._jvm.java.lang.ProcessHandle.current().pid())}

    def snapshot(self) -> tuple[int, int]:
        sockets = _sockets()
        inside = {local for local, _, pids, _, _ in sockets if pids & self.pids}
        sent = received = 0
        for _, peer, pids, s, r in sockets:
            if pids & self.pids and peer not in inside:
                sent += s
                received += r
        return sent, received
