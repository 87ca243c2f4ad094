"""Which failures wait for the infrastructure and which dead-letter the record."""

import sqlite3

import pytest
from sqlalchemy import exc as sa_exc

from vuonminh.shared.transient import is_transient, sqlstate_of


class _ServerError(Exception):
    """What SQLAlchemy's asyncpg dialect puts in `DBAPIError.orig`: the SQLSTATE as an attribute."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"server said {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi_error(sqlstate: str) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError("INSERT ...", {}, _ServerError(sqlstate))


@pytest.mark.parametrize(
    "sqlstate",
    ["57P01", "57P03", "08006", "08001", "53300", "40P01", "40001", "25006", "53100", "58030"],
)
def test_server_states_of_an_outage_are_transient(sqlstate):
    error = _dbapi_error(sqlstate)
    assert sqlstate_of(error) == sqlstate
    assert is_transient(error)


@pytest.mark.parametrize("sqlstate", ["23505", "23503", "22003", "22001", "42P01", "42703"])
def test_errors_in_the_statement_or_the_data_are_not(sqlstate):
    assert not is_transient(_dbapi_error(sqlstate))


def test_a_state_found_down_the_cause_chain_counts():
    try:
        try:
            raise _ServerError("57P01")
        except _ServerError as server:
            raise RuntimeError("handler failed") from server
    except RuntimeError as error:
        assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
        sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("database is locked")),
        sa_exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full")),
    ],
)
def test_connection_pool_and_sqlite_busy_errors_are_transient(error):
    assert is_transient(error)


def test_a_dropped_connection_is_transient_even_without_a_state():
    dropped = sa_exc.DBAPIError("SELECT 1", {}, Exception("connection was closed"), connection_invalidated=True)
    assert is_transient(dropped)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad total"),
        sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("no such table: orders")),
        sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
    ],
)
def test_bugs_and_bad_records_are_not(error):
    assert not is_transient(error)


def test_an_error_raised_while_an_outage_was_being_handled_is_judged_on_its_own():
    try:
        try:
            raise ConnectionRefusedError(111, "refused")
        except ConnectionRefusedError:
            raise ValueError("line total over the limit")  # noqa: B904 - the implicit context is the point
    except ValueError as error:
        assert not is_transient(error)
