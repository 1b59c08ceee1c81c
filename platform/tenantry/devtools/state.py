"""`<data dir>/dev.json`: where a running `tenantry dev` keeps its servers, so that
`migrate`, `create-superuser`, `worker` and `seed` find them without a hand-built URL."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "dev.json"
DATA_DIR_ENV = "TENANTRY_DATA_DIR"
DEFAULT_DATA_DIR = Path(".tenantry")
# What a command needs to reach the platform; any of these in the environment wins.
URL_VARIABLES = ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL")


@dataclass
class DevState:
    pid: int
    api_url: str
    mail_dir: str
    environment: dict[str, str] = field(default_factory=dict)
    children: dict[str, int] = field(default_factory=dict)

    def write(self, data_dir: Path) -> None:
        target = data_dir / STATE_FILE
        tmp = target.with_suffix(".tmp")
        # Owner-only: the URLs may carry passwords (DATABASE_URL given to `dev`).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(asdict(self), indent=2))
        tmp.replace(target)


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(data_dir: Path) -> DevState | None:
    """The state of a `tenantry dev` that is still running under `data_dir`, else None."""
    try:
        raw = json.loads((data_dir / STATE_FILE).read_text())
        state = DevState(**raw)
    except (OSError, ValueError, TypeError):
        return None
    return state if _alive(state.pid) else None


def remove(data_dir: Path, pid: int) -> None:
    """Drop the state file if it is still ours (a second `dev` may have replaced it)."""
    target = data_dir / STATE_FILE
    try:
        if json.loads(target.read_text()).get("pid") == pid:
            target.unlink()
    except (OSError, ValueError):
        pass


def urls_configured() -> bool:
    """DATABASE_URL set in the environment or in `.env` (what Settings would read)."""
    if os.environ.get("DATABASE_URL"):
        return True
    from tenantry.config import Settings

    return "database_url" in Settings().model_fields_set


class NoDatabase(RuntimeError):
    """Neither a URL nor a running `tenantry dev` to borrow one from."""


def use_running_dev(data_dir: Path | None = None) -> DevState | None:
    """With no DATABASE_URL configured, point this process at the `tenantry dev`
    running under the data dir; raise NoDatabase saying exactly what to do otherwise.

    Returns the state used, or None when URLs were configured already.
    """
    if urls_configured():
        return None
    data_dir = (data_dir or default_data_dir()).resolve()
    state = read(data_dir)
    if state is None:
        raise NoDatabase(
            "DATABASE_URL is not set and no `tenantry dev` is running under "
            f"{data_dir}. Start `uv run tenantry dev` in another terminal (or pass "
            f"--data-dir / set {DATA_DIR_ENV} to its data dir), or set DATABASE_URL "
            "(the app role), DATABASE_OWNER_URL (the owner role) and REDIS_URL."
        )
    for name, value in state.environment.items():
        os.environ.setdefault(name, value)
    from tenantry.config import get_settings

    get_settings.cache_clear()
    return state
