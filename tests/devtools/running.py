"""`tenantry dev` as a child of the test: started, read line by line, stopped."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BANNER = "Tenantry is up."
_API = re.compile(r"API docs\s+(http://\S+)/api/docs")
_WORKER = re.compile(r"worker (http://\S+/health)")


@dataclass
class DevProcess:
    proc: subprocess.Popen[str]
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> DevProcess:
        environ = dict(os.environ if env is None else env)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tenantry.cli", "dev", "--data-dir", str(data_dir), *args],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        dev = cls(proc, data_dir)
        threading.Thread(target=dev._read, daemon=True).start()
        return dev

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 240) -> str:
        """The first line containing `text`; AssertionError (with the output) if it
        never comes or the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    break
                continue
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} from tenantry dev:\n" + "\n".join(self.lines[-60:]))

    def wait_up(self) -> tuple[str, str]:
        """The API base URL and the worker health URL from the banner."""
        self.wait_for(BANNER)
        api = worker = ""
        for _ in range(10):
            line = self.wait_for("")
            if match := _API.search(line):
                api = match.group(1)
            if match := _WORKER.search(line):
                worker = match.group(1)
            if api and worker:
                return api, worker
        raise AssertionError("banner without URLs:\n" + "\n".join(self.lines[-30:]))

    def output(self) -> str:
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return "\n".join(self.lines)

    def children(self) -> dict[str, int]:
        state = json.loads((self.data_dir / "dev.json").read_text())
        return dict(state["children"])

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
