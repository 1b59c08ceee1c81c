"""The process tree of `tenantry dev`: children whose death stops everything, loudly.

Each child's stderr passes through a thread that forwards it and keeps its last line,
so when a child dies the one-line reason (its exit status and that last line) is the
last thing printed, and `tenantry dev` exits non-zero instead of tearing down quietly.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody holds now (the kernel's pick). Another process could take it before
    our child binds it; the child would then die, and say so."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Child:
    """A child process whose stderr we forward line by line, remembering the last one."""

    name: str
    proc: subprocess.Popen[bytes]
    last_line: str = ""
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def start(cls, name: str, argv: list[str], env: dict[str, str]) -> Child:
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
        child = cls(name, proc)
        child._thread = threading.Thread(target=child._forward, name=f"{name}-stderr", daemon=True)
        child._thread.start()
        return child

    def _forward(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            sys.stderr.buffer.write(raw)
            sys.stderr.buffer.flush()
            line = raw.decode(errors="replace").strip()
            if line:
                self.last_line = line

    def reason(self) -> str:
        """One line: who died, how, and the last thing it said."""
        code = self.proc.returncode
        status = describe_exit(code) if code is not None else "is gone"
        if self._thread is not None:
            self._thread.join(timeout=2)  # the rest of its stderr, if any
        # A crash's last line is its exception; a killed child's is whatever it last logged.
        said = f": {self.last_line}" if self.last_line and code and code > 0 else ""
        return f"the {self.name} {status}{said}"


class ChildDied(RuntimeError):
    def __init__(self, child: Child) -> None:
        super().__init__(child.reason())
        self.child = child


class Stopped(Exception):
    """Ctrl-C or SIGTERM while waiting."""


class Tree:
    """The children, a stop flag set by SIGINT/SIGTERM, and a graceful stop of all."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stopping = False

    def install_signals(self) -> None:
        def _stop(*_: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child.start(name, argv, env)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raise Stopped on a signal, ChildDied when any child has exited."""
        if self.stopping:
            raise Stopped
        for child in self.children:
            if child.proc.poll() is not None:
                raise ChildDied(child)

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` while watching the children; TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not answer within {timeout:.0f} s")
            time.sleep(0.25)

    def run(self, tick: Callable[[], None], interval: float = 0.5) -> None:
        """Until a signal (returns) or a child's death (raises ChildDied)."""
        while True:
            try:
                self.check()
            except Stopped:
                return
            tick()
            time.sleep(interval)

    def stop(self, grace: float = 10.0) -> None:
        for child in self.children:
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()


def answers_200(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (our own http URL)
                return int(response.status) == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return probe


class MailWatcher:
    """Prints the subject of each new message in the dev mail directory, once."""

    def __init__(self, directory: Path, echo: Callable[[str], None]) -> None:
        self.directory = directory
        self.echo = echo
        self.seen = self._current()

    def _current(self) -> set[str]:
        with contextlib.suppress(OSError):
            return {p.name for p in self.directory.glob("*.eml")}
        return set()

    def __call__(self) -> None:
        from tenantry.devtools.mail import summary

        current = self._current()
        for name in sorted(current - self.seen):
            self.echo(summary(self.directory / name))
        self.seen |= current
