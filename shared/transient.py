"""Which failures are the infrastructure's (wait for it) and which are the record's (dead-letter it).

A consumer must never park a good event because the database restarted or the log was away:
those errors are retried until the infrastructure returns. Only an error in the record itself
(it breaks a rule, a constraint, a schema) is retried a few times and then dead-lettered.

PostgreSQL reports the cause as a SQLSTATE; SQLAlchemy's asyncpg dialect wraps every server error
in its generic `DBAPIError`, so the class of the code decides, not the Python type. SQLite and the
drivers' own connection errors have no SQLSTATE and are recognised by their kind.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

# SQLSTATE classes that say nothing about the statement, only about the server's state.
_TRANSIENT_SQLSTATE_CLASSES = {
    "08",  # connection exception (dropped, refused, failure during connect)
    "40",  # transaction rollback: serialization failure 40001, deadlock 40P01
    "53",  # insufficient resources: too many connections 53300, disk full 53100, out of memory 53200
    "57",  # operator intervention: admin shutdown 57P01 (restart, failover), starting up 57P03
    "58",  # system error: I/O error 58030
}
_TRANSIENT_SQLSTATES = {
    "25006",  # read_only_sql_transaction: a standby right after a failover, or a read-only window
    "55P03",  # lock_not_available
    "55006",  # object_in_use
    "HV000",  # fdw unable to establish connection (same meaning as class 08)
}
# SQLite's transient conditions, as its messages name them.
_SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
)

# asyncpg's client-side connection errors carry no SQLSTATE.
_ASYNCPG_CONNECTION_ERRORS = {
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "InterfaceError",
    "InternalClientError",
    "TooManyConnectionsError",
    "CannotConnectNowError",
}


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # Only explicit causes: an implicit __context__ may be an unrelated error being handled.
        pending.extend((getattr(current, "orig", None), current.__cause__))


def sqlstate_of(error: BaseException) -> str | None:
    for cause in _chain(error):
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def is_transient(error: BaseException) -> bool:
    """True when the failure is the infrastructure's: retry the same record later, forever."""
    code = sqlstate_of(error)
    if code is not None:
        return code[:2] in _TRANSIENT_SQLSTATE_CLASSES or code in _TRANSIENT_SQLSTATES
    causes = list(_chain(error))
    sqlite_errors = [c for c in causes if isinstance(c, sqlite3.Error)]
    if sqlite_errors:  # "no such table" is a bug to see, "database is locked" a wait
        return any(m in str(c).lower() for c in sqlite_errors for m in _SQLITE_TRANSIENT)
    for cause in causes:
        if isinstance(cause, sa_exc.DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, sa_exc.TimeoutError | TimeoutError | asyncio.TimeoutError | ConnectionError | OSError):
            return True  # pool checkout timeout, refused or reset connection
        if isinstance(cause, sa_exc.InterfaceError | sa_exc.OperationalError):
            return True  # the driver lost its connection
        if getattr(cause, "retriable", False):  # aiokafka's KafkaError subclasses say so themselves
            return True
        if type(cause).__module__.startswith("asyncpg") and type(cause).__name__ in _ASYNCPG_CONNECTION_ERRORS:
            return True
    return False
