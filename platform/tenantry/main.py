"""create_app(): lifespan (engine, Redis), middleware, routers."""

from __future__ import annotations

from tenantry.kit.startup import serving, startup_imports

# Everything the API needs loads here, with the garbage collector paused (kit.startup).
with startup_imports():
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import APIRouter, FastAPI
    from fastapi.middleware.cors import CORSMiddleware

    from tenantry import __version__, cache, health
    from tenantry.auth.credential_changes import CredentialChanges
    from tenantry.config import Environment, Settings, get_settings
    from tenantry.db import Database, app_role_problems
    from tenantry.error_handlers import install_error_handlers
    from tenantry.idempotency import IdempotencyMiddleware
    from tenantry.input_guard import InputGuardMiddleware
    from tenantry.kit import openapi
    from tenantry.kit.http import API_PREFIX
    from tenantry.middleware import HttpShellMiddleware
    from tenantry.observability import http as http_metrics
    from tenantry.observability.multiprocess import mark_process_dead
    from tenantry.observability.sentry import init_sentry
    from tenantry.redis_client import create_redis


def api_routers() -> list[APIRouter]:
    """Every domain's router, for /api/v1; imported here so the import graph stays one-way.

    Included one by one into the app rather than through one /api/v1 router: FastAPI
    matches a request by walking each level of included routers (twice), so a level
    less is measurably cheaper on every request; the hot routes come first (the task
    list, then `/users/me`, every client's first call: 5 % of its CPU was matching the
    routes ahead of it).
    """
    from tenantry.admin.endpoints import router as admin_router
    from tenantry.api_keys.endpoints import router as api_keys_router
    from tenantry.audit.endpoints import router as audit_router
    from tenantry.comments.endpoints import router as comments_router
    from tenantry.invitations.endpoints import router as invitations_router
    from tenantry.members.endpoints import router as members_router
    from tenantry.projects.endpoints import router as projects_router
    from tenantry.reports.endpoints import router as reports_router
    from tenantry.sessions.endpoints import router as sessions_router
    from tenantry.tasks.endpoints import exports_router
    from tenantry.tasks.endpoints import router as tasks_router
    from tenantry.tenants.endpoints import router as tenants_router
    from tenantry.users.endpoints import router as users_router
    from tenantry.webhooks.endpoints import router as webhooks_router

    return [
        tasks_router,
        users_router,
        comments_router,
        projects_router,
        exports_router,
        sessions_router,
        tenants_router,
        members_router,
        invitations_router,
        api_keys_router,
        reports_router,
        audit_router,
        webhooks_router,
        admin_router,
    ]


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
) -> FastAPI:
    """Build the API. Tests pass their own `db` (bound to a rolled-back transaction)."""
    settings = settings or get_settings()
    init_sentry(settings, component="api")
    cache.local.resize(settings.cache_local_max_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_db = db is None
        app.state.db = db or Database.from_settings(settings)
        app.state.redis = create_redis(settings)
        if settings.check_db_role:
            problems = await app_role_problems(app.state.db.engine)
            if problems:
                raise RuntimeError(
                    "refusing to start: the DATABASE_URL role "
                    + ", ".join(problems)
                    + "; connect as a plain app role (see README: Database roles)"
                )
        await app.state.db.detect_citus()
        pool_gauges = asyncio.create_task(http_metrics.watch_pool(app.state.db))
        listener = None
        if app.state.db.commits:
            # On Citus it finds no triggers and says so (the gauge at 0); it looks again
            # now and then, so a database that was down at startup is heard once up.
            changes = app.state.credential_changes = CredentialChanges(
                app.state.db, app.state.redis
            )
            listener = asyncio.create_task(changes.run())
        if settings.environment is Environment.PRODUCTION:
            # Not for test apps, built by the hundred in one process.
            serving()
        try:
            yield
        finally:
            pool_gauges.cancel()
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await app.state.redis.aclose()
            if own_db:
                await app.state.db.dispose()
            mark_process_dead()

    show_docs = settings.show_docs
    app = FastAPI(
        title=settings.project_name,
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json" if show_docs else None,
        docs_url="/api/docs" if show_docs else None,
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
        # Our telemetry is Prometheus (observability.http) and Sentry. FastAPI's own
        # OpenTelemetry, on by default, asks the global providers on every request
        # whether anyone listens: 2 % of a cached read's CPU, for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings

    install_error_handlers(app)
    # Innermost: replays skip the app but still pass through CORS and the HTTP shell.
    app.add_middleware(IdempotencyMiddleware)
    # Outside idempotency: a refused body never claims a key.
    app.add_middleware(InputGuardMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "X-Request-ID",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After",
                "ETag",
                "Location",
            ],
        )
    # Outermost, so every response (CORS preflights and crashes included) carries the
    # request id and security headers.
    app.add_middleware(HttpShellMiddleware, max_body_bytes=settings.max_body_bytes)
    # Outside the shell, so metrics and the access log see the status the client got.
    http_metrics.install(app, settings, before_scrape=health.refresh)

    for router in api_routers():
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    openapi.install(app)
    if not settings.is_production:
        # Where email links land in development (in production: the product's front end).
        from tenantry.devtools.pages import routes as dev_pages

        app.router.routes.extend(dev_pages)
    return app
