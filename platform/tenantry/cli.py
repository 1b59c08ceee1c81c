"""`tenantry dev | serve | worker | migrate | create-superuser`: one entry point for people,
images and probes."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from tenantry.users.schemas import UserCreate

app = typer.Typer(help="Tenantry: a multi-tenant SaaS API platform.", no_args_is_help=True)


ALEMBIC_INI_ENV = "TENANTRY_ALEMBIC_INI"


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="TENANTRY_DATA_DIR",
        help="Where `tenantry dev` keeps its embedded servers, mail and state [default: .tenantry]",
        show_default=False,
    ),
]


def _borrow_dev_servers(data_dir: Path | None) -> None:
    """No DATABASE_URL: use the servers of the `tenantry dev` running under the data
    dir, or exit 2 saying exactly what to set."""
    from tenantry.devtools import state

    try:
        found = state.use_running_dev(data_dir)
    except state.NoDatabase as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if found is not None:
        typer.echo(f"using the servers of `tenantry dev` (pid {found.pid})", err=True)


class MigrationsNotFound(FileNotFoundError):
    """No alembic.ini where `tenantry migrate` looks for one."""


def find_alembic_ini() -> Path:
    """Where the migrations live: `$TENANTRY_ALEMBIC_INI`, else the source checkout this
    module sits in, else `./alembic.ini`.

    An installed (non-editable) package lives in site-packages, far from alembic.ini, so
    the image copies the migrations into its WORKDIR and names them in the environment.
    Guessing wrong would migrate nothing, so a miss says where we looked.
    """
    explicit = os.environ.get(ALEMBIC_INI_ENV)
    if explicit:
        ini = Path(explicit).expanduser()
        if not ini.is_file():
            raise MigrationsNotFound(f"{ALEMBIC_INI_ENV}={explicit} is not a file")
        return ini.resolve()
    candidates = [Path(__file__).resolve().parents[2] / "alembic.ini", Path.cwd() / "alembic.ini"]
    for ini in candidates:
        if ini.is_file():
            return ini.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise MigrationsNotFound(f"no alembic.ini at {looked}; set {ALEMBIC_INI_ENV}")


def _alembic_config(url: str | None = None, app_role: str | None = None) -> object:
    from alembic.config import Config

    config = Config(str(find_alembic_ini()))
    if url:
        config.attributes["url"] = url
    if app_role:
        config.attributes["app_role"] = app_role
    return config


def run_migrations(url: str | None = None, app_role: str | None = None) -> None:
    from alembic import command

    command.upgrade(_alembic_config(url, app_role), "head")  # type: ignore[arg-type]


@app.command()
def migrate(data_dir: DataDirOption = None) -> None:
    """Upgrade the schema to head as the owner role, then grant the app role. With no
    DATABASE_URL set, migrates the database of the running `tenantry dev`."""
    try:
        find_alembic_ini()
        _borrow_dev_servers(data_dir)
        run_migrations()
    except MigrationsNotFound as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("migrated to head")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="Reload on code changes (development)")] = False,
) -> None:
    """Run the API with uvicorn against DATABASE_URL and REDIS_URL."""
    from tenantry.kit.startup import startup_imports
    from tenantry.observability import multiprocess

    # Before anything imports prometheus_client, in this process and the workers it spawns.
    multiprocess.prepare(workers)

    with startup_imports():  # uvicorn then imports tenantry.main, which does the same
        import uvicorn

        from tenantry.config import get_settings
        from tenantry.observability.logging import logging_config

    settings = get_settings()
    uvicorn.run(
        "tenantry.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        server_header=False,
        # Applied in every worker process; tenantry.access replaces uvicorn's access log.
        log_config=logging_config(settings, component="api"),
        access_log=False,
    )


@app.command()
def worker(
    check: Annotated[bool, typer.Option(help="Exit 0 if a worker is alive (for probes)")] = False,
) -> None:
    """Run an ARQ worker (or, with --check, probe the one in this container). With no
    DATABASE_URL set, joins the running `tenantry dev` (its data dir: TENANTRY_DATA_DIR)."""
    if check:
        # A probe, run every few seconds: the standard library only, no settings or ARQ.
        from tenantry.observability.probe import check_worker

        raise typer.Exit(check_worker())
    _borrow_dev_servers(None)
    # One process: the in-memory registry, never files shared with an API in the same box.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from tenantry.kit.startup import startup_imports

    with startup_imports():
        from tenantry.config import get_settings
        from tenantry.observability.logging import configure_logging
        from tenantry.observability.sentry import init_sentry

        settings = get_settings()
        configure_logging(settings, component="worker")
        # Before create_worker is imported: Sentry's ARQ integration patches it.
        init_sentry(settings, component="worker")
        # The CLI is the composition root: it may load the worker; the API never does.
        settings_cls = importlib.import_module("workers.settings").WorkerSettings
        # Our loop around ARQ's job handling: it rides out a Redis outage (workers/runner.py).
        runner = importlib.import_module("workers.runner")
    runner.run(settings_cls)


def _ask(value: str | None, flag: str, env: str, *, secret: bool = False) -> str:
    """A flag or env value as given; else a prompt when a person is at the terminal."""
    if value:
        return value
    if not sys.stdin.isatty():
        typer.echo(f"error: {flag} is required (or set {env})", err=True)
        raise typer.Exit(2)
    answer: str = typer.prompt(
        flag.removeprefix("--").replace("-", " "), hide_input=secret, confirmation_prompt=secret
    )
    return answer


@app.command("create-superuser")
def create_superuser(
    email: Annotated[str | None, typer.Option(envvar="TENANTRY_SUPERUSER_EMAIL")] = None,
    username: Annotated[str | None, typer.Option(envvar="TENANTRY_SUPERUSER_USERNAME")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="TENANTRY_SUPERUSER_PASSWORD", show_default=False)
    ] = None,
    full_name: Annotated[str | None, typer.Option(envvar="TENANTRY_SUPERUSER_FULL_NAME")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create a platform operator (is_superuser). Prompts for what is missing when run
    at a terminal; scripts pass flags or TENANTRY_SUPERUSER_* variables. With no
    DATABASE_URL set, writes to the database of the running `tenantry dev`."""
    _borrow_dev_servers(data_dir)
    values = {
        "email": _ask(email, "--email", "TENANTRY_SUPERUSER_EMAIL"),
        "username": _ask(username, "--username", "TENANTRY_SUPERUSER_USERNAME"),
        "password": _ask(password, "--password", "TENANTRY_SUPERUSER_PASSWORD", secret=True),
        "full_name": full_name if full_name is not None else "",
    }
    import asyncio

    from pydantic import ValidationError

    from tenantry.users.schemas import UserCreate

    try:
        data = UserCreate.model_validate(values)
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            typer.echo(f"error: {field}: {error['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None
    user_id = asyncio.run(_create_superuser(data))
    typer.echo(f"created superuser {data.username} ({user_id})")


async def _create_superuser(data: UserCreate) -> str:
    from tenantry.config import get_settings
    from tenantry.db import Database
    from tenantry.errors import Conflict
    from tenantry.users.service import user as user_service

    settings = get_settings()
    db = Database.from_settings(settings)
    try:
        async with db.session_scope() as session:
            user = await user_service.create(
                session, settings, data, is_superuser=True, verified=True, welcome=False
            )
            return str(user.id)
    except Conflict as exc:
        typer.echo(f"error: {exc.detail}; nothing changed", err=True)
        raise typer.Exit(1) from None
    finally:
        await db.dispose()


@app.command()
def dev(
    port: Annotated[
        int | None,
        typer.Option(help="API port [default: 8000 if free, else a free one]", show_default=False),
    ] = None,
    worker_metrics_port: Annotated[
        int | None,
        typer.Option(help="The worker's /metrics and /health port [default: a free one]"),
    ] = None,
    data_dir: DataDirOption = None,
    seed: Annotated[
        bool, typer.Option("--seed", help="Create demo accounts and data once it is up")
    ] = False,
    ready_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the API and the worker")
    ] = 180.0,
) -> None:
    """Everything on one machine: embedded PostgreSQL and Valkey (unless DATABASE_URL /
    REDIS_URL are set), migrations, the API and a worker. If any part dies, everything
    stops with the reason and a non-zero exit. Ctrl-C stops it all."""
    from tenantry.devtools import dev as devmode

    raise typer.Exit(
        devmode.run(
            port=port,
            worker_metrics_port=worker_metrics_port,
            data_dir=data_dir,
            seed=seed,
            ready_timeout=ready_timeout,
            echo=typer.echo,
        )
    )


@app.command("seed")
def seed_command(data_dir: DataDirOption = None) -> None:
    """Create a demo operator, tenant, members, projects and tasks in the running
    `tenantry dev` (or the API at PUBLIC_URL with DATABASE_URL set), then say how to log in."""
    from tenantry.devtools import seed as seeding
    from tenantry.devtools import state

    _borrow_dev_servers(data_dir)
    running = state.read((data_dir or state.default_data_dir()).resolve())
    try:
        result = seeding.seed(
            api_url=running.api_url if running else None,
            mail_dir=Path(running.mail_dir) if running else None,
        )
    except seeding.SeedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.how_to_log_in())


@app.command("mail-token")
def mail_token(
    to: Annotated[str, typer.Argument(help="The recipient's address")],
    subject: Annotated[str, typer.Option(help="Only messages whose subject contains this")] = "",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the message")] = 30.0,
    data_dir: DataDirOption = None,
) -> None:
    """Print the token of the newest dev email to an address (verify-email, invitation,
    password reset), waiting for it to arrive. Reads `<data dir>/mail/*.txt`."""
    from tenantry.devtools import state
    from tenantry.devtools.mail import find_token

    directory = (data_dir or state.default_data_dir()).resolve()
    running = state.read(directory)
    mail_dir = Path(running.mail_dir) if running else directory / "mail"
    found = find_token(mail_dir, to, subject=subject, wait=wait)
    if found is None:
        typer.echo(f"error: no email with a token to {to} in {mail_dir}", err=True)
        raise typer.Exit(1)
    typer.echo(found[0])


def main() -> None:
    app()


if __name__ == "__main__":
    main()
