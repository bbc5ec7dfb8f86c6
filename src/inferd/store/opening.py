"""Opening a store from its URL: the engine, SQLite's pragmas, the tables and their version.

SQLite runs with a WAL journal and ``synchronous=NORMAL``: a committed transaction survives a
kill of the process at any moment; a power loss (not a process kill) may lose the last few
commits, never corrupt the file. PostgreSQL's durability is the server's own settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError

from inferd.store import schema
from inferd.store.store import Store, insert_ignore

STATEMENT_TIMEOUT_MS = 30_000
"""PostgreSQL cancels a statement running longer (a lock held elsewhere, say); SQLite's
busy_timeout bounds its waits the same way."""
SUPPORTED_URLS = "sqlite:///path/to/inferd.db or postgresql://user:password@host:port/database"
_SQLITE_DRIVERS = ("sqlite", "sqlite+pysqlite")
_POSTGRES_DRIVERS = ("postgresql", "postgres", "postgresql+psycopg")


def default_store_url(data_dir: Path) -> str:
    """The SQLite store in ``data_dir`` (created if missing)."""
    data_dir = Path(data_dir).expanduser().absolute()
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'inferd.db'}"


def open_store(url: str) -> Store:
    """Open (and create or upgrade the tables of) the store at ``url``.

    ``sqlite:///<file>`` and ``postgresql://...`` (run with the psycopg 3 driver) work; any
    other URL, an unreachable database or a store written by a newer inferd raises ValueError
    with a message that says so.
    """
    engine, shown = _create_engine(url)
    try:
        _prepare(engine, shown)
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = getattr(exc, "orig", None) or exc
        raise ValueError(f"could not open the store at {shown}: {reason}") from exc
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, shown)


def _create_engine(url: str) -> tuple[Engine, str]:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"the store URL {url!r} is not a URL; use {SUPPORTED_URLS}") from None
    shown = parsed.render_as_string(hide_password=True)
    common: dict[str, Any] = {"json_serializer": schema.dumps, "json_deserializer": schema.loads}
    if parsed.drivername in _SQLITE_DRIVERS:
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ValueError(
                f"the store URL {shown!r} names no database file; an in-memory store would "
                f"forget the outbox on restart. Use {SUPPORTED_URLS}"
            )
        Path(database).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed.set(drivername="sqlite+pysqlite"), **common)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine, shown
    if parsed.drivername in _POSTGRES_DRIVERS:
        try:
            import psycopg  # noqa: F401  (the driver SQLAlchemy will load)
        except ImportError:
            raise ValueError(
                f"the store URL {shown!r} needs the PostgreSQL driver: "
                "pip install 'inferd[postgres]'"
            ) from None
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = 10
        if "options" not in parsed.query:  # a statement that hangs fails instead of the server
            connect_args["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
        engine = create_engine(
            parsed.set(drivername="postgresql+psycopg"),
            pool_pre_ping=True,  # a restarted server's dead connections are replaced
            connect_args=connect_args,
            **common,
        )
        return engine, shown
    raise ValueError(
        f"the store URL scheme {parsed.drivername!r} is not supported; use {SUPPORTED_URLS}"
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Set on every new connection: SQLite keeps pragmas per connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 5000")  # first, so switching to WAL waits too
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _prepare(engine: Engine, shown: str) -> None:
    try:
        schema.metadata.create_all(engine)
    except (IntegrityError, ProgrammingError):
        # Another process created the same tables at the same moment; the second look sees them.
        schema.metadata.create_all(engine)
    table = schema.schema_version
    with engine.begin() as conn:
        found = conn.execute(select(table.c.version).where(table.c.id == 1)).scalar_one_or_none()
        if found is None:
            conn.execute(
                insert_ignore(engine, table, "id").values(id=1, version=schema.SCHEMA_VERSION)
            )
        elif found > schema.SCHEMA_VERSION:
            raise ValueError(
                f"the store at {shown} has schema version {found}, written by a newer inferd "
                f"(this one reads version {schema.SCHEMA_VERSION}); upgrade inferd"
            )
        elif found < schema.SCHEMA_VERSION:
            _upgrade(conn, found)


def _upgrade(conn: Connection, found: int) -> None:
    """Add the columns of every schema version after `found` (in the same transaction as
    the version bump, so a store is never half upgraded on PostgreSQL; SQLite's ALTER TABLE
    is transactional too)."""
    table = schema.predictions
    preparer = conn.dialect.identifier_preparer
    for version in range(found + 1, schema.SCHEMA_VERSION + 1):
        for name in schema.ADDED_IN.get(version, ()):
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(
                f"ALTER TABLE {preparer.format_table(table)} "
                f"ADD COLUMN {preparer.format_column(column)} {kind}"
            )
    conn.execute(
        update(schema.schema_version)
        .where(schema.schema_version.c.id == 1)
        .values(version=schema.SCHEMA_VERSION)
    )


__all__ = ["SUPPORTED_URLS", "default_store_url", "open_store"]
