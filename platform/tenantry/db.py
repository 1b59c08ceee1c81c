"""Engine, sessions and the per-transaction tenant context. No FastAPI here."""

from __future__ import annotations

import asyncio
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

from tenantry import context_rows
from tenantry.config import Settings
from tenantry.raw_pool import RawPool

# One statement sets every RLS input for the current transaction only, so a pooled
# connection never carries one request's tenant into the next. It also closes the
# lookup arms (API key, invitation token, maintenance), which only their own lookups
# open. `set_app_context()` (a migration) issues `SET LOCAL`, which Citus forwards to its
# workers and the set_config function is not; never set an RLS input any other way.
_SET_CONTEXT = (
    "SELECT set_app_context($1, $2, p_api_key_hash => '', p_invitation_token_hash => '',"
    " p_maintenance => '')"
)
_CONTEXT = "rls_context"
_WRITES = "writes"
_WRITTEN = "tenants_written"
# How asyncpg reports a connection that is gone: the server closed it (restart,
# pg_terminate_backend), the socket broke, or the protocol met the server's goodbye
# mid-operation.
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
)


class TenantSession(Session):
    """A session that scopes every transaction it begins to its RLS context.

    The context (`set_tenant_context`) lives in `session.info` and is applied by the
    `after_begin` hook below, so it costs nothing until the session first touches the
    database (a cached read never does) and it survives a commit: the next transaction
    is scoped again. A session without a context begins with the settings empty.
    """


@event.listens_for(TenantSession, "after_begin")
def _apply_context(session: Session, transaction: object, connection: sa.Connection) -> None:
    if session.info.get(_WRITES) is not None:
        # A second transaction in one unit of work would commit apart from the first.
        raise RuntimeError("the session began a transaction beside its open writes_for()")
    tenant_id, user_id = session.info.get(_CONTEXT, (None, None))
    connection.exec_driver_sql(_SET_CONTEXT, _context_args(tenant_id, user_id))


def _context_args(tenant_id: uuid.UUID | None, user_id: uuid.UUID | None) -> tuple[str, str]:
    return (str(tenant_id) if tenant_id else "", str(user_id) if user_id else "")


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


@dataclass(frozen=True)
class _LaneSpec:
    """How the raw lane connects (`Database._check_out`): as its engine does."""

    connect: dict[str, Any]
    size: int
    timeout: float
    # Whether asyncpg keeps statements (`DB_STATEMENT_CACHE_SIZE` > 0; 0 is the
    # setting for a PgBouncer that cannot), so reads may run as `context_rows` calls.
    prepares: bool


# Both pools replace a connection this old (SQLAlchemy's) or idle this long (the lane's).
_RECYCLE_SECONDS = 1800


# What `create_engine` connected with, per engine, for the raw lane's own pool beside it.
_LANE_SPECS: weakref.WeakKeyDictionary[sa.Engine, _LaneSpec] = weakref.WeakKeyDictionary()


def create_engine(settings: Settings, *, url: str | None = None, **overrides: Any) -> AsyncEngine:
    """An asyncpg engine whose every wait is bounded, so a hung database becomes a 503."""
    connect_args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout,
        "command_timeout": settings.db_statement_timeout_ms / 1000 + 5,
        "server_settings": {
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "lock_timeout": str(settings.db_lock_timeout_ms),
            "idle_in_transaction_session_timeout": "60000",
            "application_name": "tenantry",
        },
    }
    options: dict[str, Any] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_timeout": settings.db_pool_timeout,
        # No pre-ping: with asyncpg it is three round trips (BEGIN, `;`, ROLLBACK) on
        # every checkout, more than the request's own queries. A connection that died
        # (database restart, failover) fails its first statement instead; that error is
        # a DBAPI disconnect, so SQLAlchemy invalidates the whole pool and the request
        # answers 503 (`errors.is_unavailable`), and the next checkout connects afresh.
        # pool_recycle bounds a connection's age below any idle timeout in between.
        "pool_pre_ping": False,
        "pool_recycle": _RECYCLE_SECONDS,
        # Statement parameters (emails, token hashes) stay out of error messages, so out
        # of logs and Sentry too.
        "hide_parameters": True,
        "connect_args": connect_args,
    }
    if settings.db_statement_cache_size == 0:
        # Behind PgBouncer (transaction pooling): no statement outlives its use, and
        # SQLAlchemy's own prepared statements get unique names, so two clients sharing
        # a server connection never collide on `__asyncpg_stmt_1__`.
        connect_args["statement_cache_size"] = 0
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    else:
        connect_args["statement_cache_size"] = settings.db_statement_cache_size
    options.update(overrides)
    engine = create_async_engine(url or settings.database_url, **options)
    lane_connect = {
        key: value
        for key, value in connect_args.items()
        if key not in ("prepared_statement_cache_size", "prepared_statement_name_func")
    }
    _, params = engine.dialect.create_connect_args(engine.url)
    _LANE_SPECS[engine.sync_engine] = _LaneSpec(
        {**params, **lane_connect},
        settings.db_read_pool_size,
        settings.db_pool_timeout,
        prepares=settings.db_statement_cache_size > 0,
    )
    return engine


def create_sessionmaker(bind: AsyncEngine | AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # Objects stay readable after commit: responses are serialised after the unit of work ends.
    return async_sessionmaker(
        bind=bind,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
        sync_session_class=TenantSession,
    )


async def set_tenant_context(
    session: AsyncSession,
    tenant_id: uuid.UUID | None,
    *,
    user_id: uuid.UUID | None = None,
) -> None:
    """Scope row-level security to a tenant (and a user's own rows) for this session.

    Applied at once to an open transaction, else when the next one begins.
    """
    session.info[_CONTEXT] = (tenant_id, user_id)
    if session.in_transaction():
        connection = await session.connection()
        await connection.exec_driver_sql(_SET_CONTEXT, _context_args(tenant_id, user_id))


async def end_read_only_transaction(session: AsyncSession) -> None:
    """End a transaction that has only read, returning its connection to the pool.

    For a request about to wait on slow CPU work (a password hash): holding a pooled
    connection and an open transaction through that wait would let a burst of logins
    exhaust the pool. The next statement begins a fresh transaction, scoped again to the
    session's RLS context.
    """
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("end_read_only_transaction() with pending writes")
    await session.commit()


_SHARD_SUFFIX = re.compile(r"_\d+$")
_NAMED = re.compile(r'constraint "([^"]+)"')


def violated_constraint(error: BaseException) -> str:
    """The name of the constraint an IntegrityError (or asyncpg's error) violated, as
    the schema names it: on Citus the violation is raised by a worker, against a shard
    whose constraint carries the shard's id (`fk_tasks_project_102008`), and the name
    may reach us only in the message. '' when there is none."""
    cause = getattr(error, "orig", error)
    cause = getattr(cause, "__cause__", None) or cause
    name = getattr(cause, "constraint_name", None) or ""
    if not name:
        found = _NAMED.search(str(cause))
        name = found.group(1) if found else ""
    return _SHARD_SUFFIX.sub("", name)


_Opening = Callable[[asyncpg.Connection], Awaitable[Any]]


def _literal(value: uuid.UUID | None) -> str:
    # A UUID's text is hex digits and dashes: safe as a literal by construction.
    return f"'{uuid.UUID(str(value))}'" if value is not None else "''"


def _begin(
    tenant_id: uuid.UUID | None, user_id: uuid.UUID | None, *, read_only: bool = True
) -> _Opening:
    """BEGIN (READ ONLY) with the RLS context, in one round trip (simple query protocol)."""
    sql = (
        f"BEGIN{' READ ONLY' if read_only else ''}; SELECT set_app_context("
        f"{_literal(tenant_id)}, {_literal(user_id)}, '', '', '')"
    )

    async def opening(connection: asyncpg.Connection) -> None:
        await connection.execute(sql)

    return opening


def _in_context(
    sql: str, args: Sequence[Any], tenant_id: uuid.UUID | None, user_id: uuid.UUID | None
) -> _Opening:
    """The rows of one read under the context: the statement itself is the opening, so
    a dead pooled connection is replaced as for any other (a read is safe to repeat)."""

    async def opening(connection: asyncpg.Connection) -> list[asyncpg.Record]:
        return await context_rows.fetch(
            connection,
            sql,
            args,
            context_rows.context_text(tenant_id),
            context_rows.context_text(user_id),
            otherwise=lambda: _begin(tenant_id, user_id)(connection),
        )

    return opening


def _fetchrow(query: str, args: Sequence[Any]) -> _Opening:
    async def opening(connection: asyncpg.Connection) -> Any:
        return await connection.fetchrow(query, *args)

    return opening


async def _give_back(
    pool: RawPool, connection: asyncpg.Connection, error: BaseException | None
) -> None:
    """End the transaction we began and return the connection, or close it when its
    state is unknown (it is gone, or a statement on it was cut short: a timeout, a
    cancellation): its place in the pool then goes to a fresh connection. An error of
    the caller's own between statements (a 404 raised in a write's transaction) leaves
    it clean: rolled back and returned."""
    try:
        if isinstance(error, (*_CONNECTION_LOST, TimeoutError, asyncio.CancelledError)):
            connection.terminate()
        elif connection.is_in_transaction():
            await connection.execute("COMMIT" if error is None else "ROLLBACK")
    except BaseException:
        connection.terminate()
        raise
    finally:
        pool.release(connection)


class RawReads:
    """Runs SQLAlchemy Core statements on a raw asyncpg connection.

    Each statement is compiled once per shape (SQLAlchemy's own cache key, as its
    engine does) and its parameters re-bound from the statement at hand. Rows come
    back as plain dicts with the driver's values (UUID, datetime, str, int).
    """

    def __init__(self, connection: asyncpg.Connection, dialect: sa.Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    async def all(
        self, stmt: sa.ClauseElement, values: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        sql, args = compiled(stmt, self.dialect, values)
        return [dict(record.items()) for record in await self.connection.fetch(sql, *args)]


class ContextReads:
    """Reads on a single PostgreSQL: each statement one round trip on a pooled
    connection, with the RLS context set by the same call (`tenantry.context_rows`).
    Each runs in its own implicit transaction: under READ COMMITTED a transaction's
    statements saw a snapshot each anyway."""

    def __init__(self, db: Database, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None):
        self.db = db
        self.tenant_id = tenant_id
        self.user_id = user_id

    async def all(
        self, stmt: sa.ClauseElement, values: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        sql, args = compiled(stmt, self.db.engine.dialect, values)
        opening = _in_context(sql, args, self.tenant_id, self.user_id)
        async with self.db._checked_out(opening) as (_, records):
            return [dict(record.items()) for record in records]


@dataclass(frozen=True)
class Rider:
    """Something a write records beside its row that rides in the write's own statement
    instead of a round trip of its own: a data-modifying CTE (an audit row) and/or a
    value its RETURNING adds (does any webhook endpoint listen?), with the values of
    their placeholders. `cte` and `returns` are templates built once, so each write
    with its riders is compiled once (see `Writes.one`)."""

    values: Mapping[str, Any]
    cte: sa.CTE | None = None
    returns: sa.Label[Any] | None = None


_RIDDEN: dict[tuple[int, ...], sa.ClauseElement] = {}


def _ridden(stmt: sa.ClauseElement, riders: Sequence[Rider]) -> sa.ClauseElement:
    """`stmt` (an INSERT/UPDATE/DELETE … RETURNING template) with the riders, built once
    per combination (templates live as long as the process, so their ids are stable
    keys): `WITH written AS (stmt), <the riders' CTEs> SELECT written.*, <their values>
    FROM written`. The write is a CTE of a SELECT rather than the statement itself
    because Citus refuses a subquery inside an INSERT (the riders' values are some)."""
    ctes = [rider.cte for rider in riders if rider.cte is not None]
    returns = [rider.returns for rider in riders if rider.returns is not None]
    key = (id(stmt), *map(id, ctes), -1, *map(id, returns))
    ridden = _RIDDEN.get(key)
    if ridden is None:
        assert isinstance(stmt, UpdateBase), stmt
        written = stmt.cte("written")
        ridden = _RIDDEN[key] = sa.select(written, *returns).add_cte(*ctes)
    return ridden


class Writes(RawReads):
    """Core statements (`INSERT/UPDATE/DELETE … RETURNING` templates, selects that lock)
    in a unit of work's transaction, straight on its asyncpg connection: see
    `writes_for`."""

    async def one(
        self,
        stmt: sa.ClauseElement,
        values: Mapping[str, Any] | None = None,
        *,
        riders: Sequence[Rider] = (),
    ) -> dict[str, Any] | None:
        """The statement's only row (None when it matched none), with what `riders`
        return beside its columns. The riders' CTEs run whether it matched or not: a
        write that finds no row must end its unit of work with an error (a 404), which
        rolls them back."""
        if riders:
            stmt = _ridden(stmt, riders)
            values = {**(values or {}), **{k: v for r in riders for k, v in r.values.items()}}
        sql, args = compiled(stmt, self.dialect, values)
        record = await self.connection.fetchrow(sql, *args)
        return None if record is None else dict(record.items())


class SessionReads:
    """The same interface over a session or connection already in a transaction (a write
    request's reads must see its own writes; tests run inside one transaction)."""

    def __init__(self, executor: AsyncSession | AsyncConnection) -> None:
        self.executor = executor

    async def all(
        self, stmt: sa.Select[*tuple[Any, ...]], values: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        result = await self.executor.execute(stmt, dict(values) if values else None)
        return [dict(row) for row in result.mappings().all()]


Reads = RawReads | ContextReads | SessionReads

_DATABASE = "database"
_READ_ONLY = "read_only"


def use_database(session: AsyncSession, db: Database, *, read_only: bool = False) -> None:
    """Let a request's session read and write on raw connections of `db`: a GET's row
    reads in a read-only transaction of their own (`read_only`, while it has begun
    nothing), a write request's statements in the one `writes_for` opens."""
    session.info[_DATABASE] = db
    session.info[_READ_ONLY] = read_only


def mark_written(session: Session | AsyncSession, tenant_id: uuid.UUID) -> None:
    """Invalidate the tenant's cache once this unit of work commits."""
    session.info.setdefault(_WRITTEN, set()).add(tenant_id)


def take_written(session: AsyncSession) -> set[uuid.UUID]:
    written: set[uuid.UUID] = session.info.pop(_WRITTEN, set())
    return written


class OpenWrites:
    """A unit of work's write transaction on a connection of its own; `end` (once, by
    `end_writes`) commits it when given no error and rolls it back otherwise."""

    def __init__(
        self,
        connection: asyncpg.Connection,
        end: Callable[[BaseException | None], Awaitable[None]],
    ) -> None:
        self.connection = connection
        self.end = end


async def writes_for(session: AsyncSession, *, opens: bool = True) -> Writes:
    """Where a repository writes rows without the ORM: the unit of work's transaction,
    on its asyncpg connection, for statements built once as templates.

    A request's session (`use_database`) that has begun nothing opens it on a pooled
    connection of its own, BEGIN and the RLS context in one round trip, kept until the
    unit of work ends it (`end_writes`); every later `reads_for` and `writes_for` of the
    request joins it, and the session may not begin an ORM transaction beside it (that
    raises). A session already in a transaction (it used the ORM first; a job's or a
    test's session) lends its own connection, so both see one transaction. Either way
    the session's tenant is noted for cache invalidation, as a flush of its rows would.

    `opens=False` never opens one: the write joins whichever transaction the unit of
    work has, or the session's. For what every domain records beside its own write
    (the audit row, the webhook fan-out): a domain whose rows go through the ORM must
    never find its flush refused because a record opened the raw transaction first.
    """
    tenant_id, user_id = session.info.get(_CONTEXT, (None, None))
    if tenant_id is not None:
        mark_written(session, tenant_id)
    bind = session.bind
    assert bind is not None
    open_writes: OpenWrites | None = session.info.get(_WRITES)
    if open_writes is None:
        db: Database | None = session.info.get(_DATABASE)
        if db is None or not opens or session.in_transaction():
            connection = await session.connection()
            raw = await connection.get_raw_connection()
            return Writes(raw.driver_connection, bind.dialect)
        open_writes = await db.open_writes(tenant_id, user_id)
        session.info[_WRITES] = open_writes
    return Writes(open_writes.connection, bind.dialect)


async def end_writes(session: AsyncSession, error: BaseException | None) -> None:
    """Commit (no `error`) or roll back the transaction `writes_for` opened, if any."""
    open_writes: OpenWrites | None = session.info.pop(_WRITES, None)
    if open_writes is not None:
        await open_writes.end(error)


@asynccontextmanager
async def reads_for(session: AsyncSession) -> AsyncIterator[Reads]:
    """Where a repository reads plain rows: the request's open write transaction
    (`writes_for`), or the session's own transaction once it has one, or when the
    request may write (its reads must see its writes, and a second connection per
    request would halve the pool under write load); else, for a GET, reads of its own
    under the session's RLS context (`Database.reads`)."""
    open_writes: OpenWrites | None = session.info.get(_WRITES)
    if open_writes is not None:
        bind = session.bind
        assert bind is not None
        yield RawReads(open_writes.connection, bind.dialect)
        return
    db: Database | None = session.info.get(_DATABASE)
    if db is None or not session.info.get(_READ_ONLY) or session.in_transaction():
        yield SessionReads(session)
        return
    tenant_id, user_id = session.info.get(_CONTEXT, (None, None))
    async with db.reads(tenant_id, user_id) as reads:
        yield reads


_COMPILED: dict[Any, Any] = {}
_COMPILED_MAX = 512


def compiled(
    stmt: sa.ClauseElement, dialect: sa.Dialect, values: Mapping[str, Any] | None = None
) -> tuple[str, list[Any]]:
    """`stmt` as the driver's SQL (`$n` placeholders) and its positional arguments,
    `values` filling its `bindparam` placeholders."""
    key = stmt._generate_cache_key()
    compiled: Any = _COMPILED.get(key.key) if key is not None else None
    if compiled is None:
        compiled = stmt.compile(dialect=dialect, cache_key=key)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("expanding parameters (IN lists) are not supported here")
        if key is not None:
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.clear()
            _COMPILED[key.key] = compiled
    params = compiled.construct_params(
        dict(values) if values else None,
        extracted_parameters=key.bindparams if key is not None else None,
        escape_names=False,
    )
    processors: Mapping[str, Any] = compiled._bind_processors
    args = []
    for name in compiled.positiontup or ():
        value = params[name]
        processor = processors.get(name)
        args.append(processor(value) if processor is not None and value is not None else value)
    return compiled.string, args


class Database:
    """The engine and its sessionmaker, built once per process."""

    def __init__(self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]):
        self.engine = engine
        self.sessionmaker = sessionmaker
        # Until `detect_citus()` says otherwise, assume the cluster: its reads are the
        # ones that must run in an explicit transaction (see `fetch_one`).
        self.citus = True
        # Whether its commits reach PostgreSQL as commits, so their NOTIFY is sent
        # (`auth.credential_changes`).
        self.commits = True
        self._lane: RawPool | None = None

    async def detect_citus(self) -> bool:
        """Learn whether the database is a Citus coordinator (once, at startup).

        On an error (the database is down at startup) it stays assumed, which is
        correct everywhere and merely costs two round trips per credential check.
        """
        try:
            async with self.engine.connect() as connection:
                found = await connection.exec_driver_sql(
                    "SELECT 1 FROM pg_extension WHERE extname = 'citus'"
                )
                self.citus = found.scalar() is not None
        except Exception:
            self.citus = True
        return self.citus

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        return cls(engine, create_sessionmaker(engine))

    async def dispose(self) -> None:
        if self._lane is not None:
            await self._lane.close()
        await self.engine.dispose()

    def _lane_spec(self) -> _LaneSpec:
        spec = _LANE_SPECS.get(self.engine.sync_engine)
        if spec is None:
            raise RuntimeError("the engine was not made by tenantry.db.create_engine")
        return spec

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own, outside every pool, as the lane connects (for a
        LISTEN that must outlive any transaction: `auth.credential_changes`)."""
        return await asyncpg.connect(**self._lane_spec().connect)

    @property
    def lane(self) -> RawPool:
        """The raw lane's own pool (see `_checked_out`), made on first use, empty."""
        if self._lane is None:
            spec = self._lane_spec()
            connect = spec.connect
            self._lane = RawPool(
                lambda: asyncpg.connect(**connect),
                size=spec.size,
                timeout=spec.timeout,
                max_idle=_RECYCLE_SECONDS,
            )
        return self._lane

    async def fetch_one(self, query: str, *args: Any) -> dict[str, Any] | None:
        """One read-only statement on a pooled connection, straight through asyncpg.

        For the credential check every request makes: through the ORM its four round
        trips cost more CPU than the rest of a cached read. On a single PostgreSQL the
        statement runs alone, in its own implicit transaction: one round trip, and it
        sees no RLS context but what it sets itself. On Citus it runs in an explicit
        transaction (BEGIN READ ONLY … COMMIT), because a context it sets with `SET
        LOCAL` reaches the workers only from inside a transaction block; those two round
        trips more cost a cached read about a fifth of its CPU (bench/run.py), which is
        why a single database does without them.
        """
        if self.citus:
            async with self._checked_out(_begin(None, None)) as (connection, _):
                record = await connection.fetchrow(query, *args)
        else:
            async with self._checked_out(_fetchrow(query, args)) as (_, record):
                pass
        return None if record is None else dict(record.items())

    @asynccontextmanager
    async def reads(
        self, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None
    ) -> AsyncIterator[Reads]:
        """Read-only reads under a tenant's RLS context, for a GET's rows, straight on
        asyncpg with SQLAlchemy's compiled SQL (the ORM session would spend four round
        trips, a greenlet hop for each, and its row machinery on rows only serialised).

        On a single PostgreSQL each read is one round trip (`ContextReads`: the context
        rides in the call). On Citus, whose workers see a context only when it is set
        inside a transaction block, and where asyncpg keeps no statements
        (`DB_STATEMENT_CACHE_SIZE=0`), a transaction instead: BEGIN READ ONLY and the
        context as one simple-protocol message (the ids are UUIDs, rendered as
        literals), the statements, COMMIT, on a connection held only for as long as the
        reads take.
        """
        if not self.citus and self._lane_spec().prepares:
            yield ContextReads(self, tenant_id, user_id)
            return
        async with self._checked_out(_begin(tenant_id, user_id)) as (connection, _):
            yield RawReads(connection, self.engine.dialect)

    async def open_writes(
        self, tenant_id: uuid.UUID | None, user_id: uuid.UUID | None
    ) -> OpenWrites:
        """A write transaction under the RLS context for a request's unit of work (see
        `writes_for`): BEGIN and the context in one round trip, as `reads` opens one, on
        a connection of the same lane. A request holds one lane connection at a time:
        its credential check has given its own back, and its reads join this one."""
        connection, _ = await self._check_out(_begin(tenant_id, user_id, read_only=False))
        lane = self.lane

        async def end(error: BaseException | None) -> None:
            await _give_back(lane, connection, error)

        return OpenWrites(connection, end)

    @asynccontextmanager
    async def _checked_out(
        self, opening: _Opening
    ) -> AsyncIterator[tuple[asyncpg.Connection, Any]]:
        """A pooled asyncpg connection on which `opening` succeeded, and what it returned;
        any transaction it began is committed on exit, or rolled back on an error."""
        connection, opened = await self._check_out(opening)
        try:
            yield connection, opened
        except BaseException as exc:
            await _give_back(self.lane, connection, exc)
            raise
        await _give_back(self.lane, connection, None)

    async def _check_out(self, opening: _Opening) -> tuple[asyncpg.Connection, Any]:
        """A pooled asyncpg connection (to give back with `_give_back`) and what `opening`
        returned on it.

        The connection comes from the lane's own small pool (`DB_READ_POOL_SIZE`,
        `tenantry.raw_pool` says why not SQLAlchemy's or asyncpg's).

        A pooled connection found dead by the opening statement (the database restarted,
        a proxy dropped it) is closed and the next one tried, until one answers or a
        fresh connection cannot be made (a 503): after a restart every idle connection
        is dead, and each fails at once. A timeout or a cancellation closes the
        connection (its state is unknown) and is not retried.
        """
        pool = self.lane
        attempts = pool.size + 1
        for attempt in range(1, attempts + 1):
            connection = await pool.acquire()
            try:
                opened = await opening(connection)
            except BaseException as exc:
                await _give_back(pool, connection, exc)
                if attempt == attempts or not isinstance(exc, _CONNECTION_LOST):
                    raise
                continue
            return connection, opened
        raise AssertionError("unreachable: the last attempt returns or raises")

    @asynccontextmanager
    async def session_scope(
        self, tenant_id: uuid.UUID | None = None, *, user_id: uuid.UUID | None = None
    ) -> AsyncIterator[AsyncSession]:
        """One transaction for a job or a script: commit on success, roll back on error."""
        async with self.sessionmaker() as session:
            try:
                await set_tenant_context(session, tenant_id, user_id=user_id)
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise


_ROLE_CHECK = sa.text(
    """
    SELECT r.rolsuper, r.rolbypassrls,
           (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relowner = r.oid AND n.nspname = 'public' AND c.relkind IN ('r', 'p'))
             AS owned
    FROM pg_roles r WHERE r.rolname = current_user
    """
)


async def app_role_problems(engine: AsyncEngine) -> list[str]:
    """Why this connection's role could escape row-level security (empty when it can't)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_ROLE_CHECK)).one()
    problems = []
    if row.rolsuper:
        problems.append("is a superuser")
    if row.rolbypassrls:
        problems.append("has BYPASSRLS")
    if row.owned:
        problems.append(f"owns {row.owned} table(s)")
    return problems
