"""A real redis-server for end-to-end tests, on a free loopback port."""

from __future__ import annotations

import shutil
import tempfile

from server_process import HOST, ServerProcess, accepts_connections


class RedisServer(ServerProcess):
    """A throwaway redis-server (Debian's package) with its own port and directory, keeping nothing on disk.

    ``kill()`` then ``start()`` is a crash and a restart on the same port, empty.
    """

    def __init__(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not installed: run scripts/test.sh, which installs it with apt")
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        options = ["--bind", HOST, "--dir", self.dir, "--save", "", "--appendonly", "no"]
        command = lambda port: [executable, "--port", str(port), *options]  # noqa: E731
        super().__init__("redis-server", command, probe=accepts_connections)

    def stop(self) -> int:
        """Stop it for good and remove its directory."""
        try:
            return super().stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
