"""Free TCP ports on 127.0.0.1 for test and benchmark services.

Each port is below the kernel's ephemeral range: a port that bind(0) hands out can be taken
meanwhile as the source port of an outgoing connection, before the service binds it. No
port is handed out twice in one process, because the ports of a stack are all picked
before any is bound.

From a shell: `python3 Tests/interop/free_ports.py N` prints N distinct ports on one line.
"""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing uses right now, below the ephemeral range."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    candidates = list(range(max(1024, low - 12000), low))
    random.shuffle(candidates)
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free TCP port below the ephemeral range")


if __name__ == "__main__":
    print(" ".join(str(free_port()) for _ in range(int(sys.argv[1]))))
