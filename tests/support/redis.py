"""A throw-away Redis server from Debian's packages, on a Unix socket, for the cluster tests.

`make test` installs `redis-server` (the Makefile's `redis` target); each test that needs a
broker starts its own here (so a test may restart it), in a temporary folder, with nothing
saved to disk. Without the package the test is skipped, saying why.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.folder),
            ],
            stdout=(self.folder / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.folder / 'redis.log').read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it as a crash would (what was queued is lost: nothing is saved)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.socket.unlink(missing_ok=True)


def redis_server(tmp_path: Path) -> RedisServer:
    if shutil.which(REDIS_SERVER) is None:
        pytest.skip("the cluster tests need Debian's redis-server (`make test` installs it)")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    return server
