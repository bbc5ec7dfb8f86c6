"""A server under test: a subprocess on a free loopback port, in its own process group, ready
when a path answers 200, and always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bench.harness import ROOT, BenchError

T = TypeVar("T")

HOST = "127.0.0.1"  # never anything else


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    assert url.startswith(f"http://{HOST}:"), url
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Server:
    """A server subprocess in its own process group; always stopped by `stop()`."""

    def __init__(self, name: str, argv: list[str], port: int, ready_path: str, log: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.ready_path = ready_path
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 90.0) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so stop() gets every child
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.tail()}"
                )
            with contextlib.suppress(OSError):
                status, _, _ = http("GET", self.url + self.ready_path)
                if status == 200:
                    return
            time.sleep(0.2)
        raise BenchError(f"{self.name} was not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def inferd_serve(name: str, repo: Path, log: Path, *flags: str) -> Server:
    """`inferd serve REPO` on a free loopback port with `flags`, from this Python's inferd
    (not started yet; ready when /v2/health/ready answers 200)."""
    port = free_port()
    argv = [sys.executable, "-m", "inferd.cli", "serve", str(repo), "--port", str(port), *flags]
    return Server(name, argv, port, "/v2/health/ready", log)


def run_stopping_servers(run: Callable[[], T], what: str = "benchmark") -> T | int:
    """`run()` with every server stopped on SIGTERM/SIGHUP, Ctrl-C or a failed run; its
    result, or the exit code a script returns (2: failed, 130: interrupted)."""
    stop_servers_on_signals()
    try:
        return run()
    except BenchError as error:
        print(f"\n{what} failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        return 130


def stop_servers_on_signals() -> None:
    """SIGTERM/SIGHUP become exceptions, so the finally blocks stop every server."""

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGHUP, interrupted)
