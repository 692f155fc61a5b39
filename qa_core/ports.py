"""A free TCP port on loopback, for the servers the toolkit starts itself (a rehearsed Space, the
benchmarks' apps and inference servers, the tests' Hub and Chroma servers).

    from qa_core.ports import free_port
    port = free_port()
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
