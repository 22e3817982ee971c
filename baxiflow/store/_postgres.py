"""The durable store in PostgreSQL (psycopg 3), for several processes or machines at once.

The same tables and behaviour as :class:`~baxiflow.store.SQLiteStore`, in the schema the
connection's ``search_path`` names first (``public`` unless the DSN says otherwise, e.g.
``options=-csearch_path=runs``). Install the ``postgres`` extra for psycopg.

>>> redact_dsn("postgresql://ada:secret@db.example:5432/runs")
'postgresql://ada@db.example:5432/runs'
>>> redact_dsn("host=db.example user=ada password='s e cret' dbname=runs")
'host=db.example user=ada dbname=runs'
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from baxiflow._optional import import_optional
from baxiflow.exceptions import StoreError
from baxiflow.store._sqlite import SQLStore, table_columns

__all__ = ["PostgresStore", "redact_dsn"]

CONNECT_TIMEOUT = 10
"""Seconds to wait for the server before giving up on opening a store."""

_IDLE = 0
"""``psycopg.pq.TransactionStatus.IDLE``: the connection is in no transaction."""

_PASSWORD = re.compile(r"\s*\bpassword\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+)")


def redact_dsn(dsn: str) -> str:
    """``dsn`` without its password, to name a database in messages."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        return _PASSWORD.sub("", dsn).strip()
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PostgresStore(SQLStore):
    """A durable store in a PostgreSQL database, shared by every process that opens it.

    Args:
        dsn: A libpq connection string, ``"postgresql://user@host:5432/dbname"`` or
            ``"host=... dbname=..."``. The tables go in the connection's current schema.

    Other applications' tables in the same database or schema are left alone. A store is
    refused (:class:`~baxiflow.exceptions.StoreError`, nothing changed) when ``baxiflow_*``
    tables are there without ``baxiflow_meta`` (not made by baxiflow), when one of them
    lacks a column baxiflow writes, or when the server cannot be reached; messages name
    the DSN without its password. Each store object holds one connection, used by one
    thread at a time; two processes cannot go on with the same run (a lease in the store).

    Raises:
        MissingDependencyError: psycopg is not installed (the ``postgres`` extra).
    """

    placeholder: ClassVar[str] = "%s"
    real: ClassVar[str] = "DOUBLE PRECISION"
    integer: ClassVar[str] = "BIGINT"
    small_rows: ClassVar[str] = ""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._where = redact_dsn(dsn)
        super().__init__()

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """A store pickles as its DSN: unpickled (on a Dask worker, say), it opens a
        connection of its own to the same database."""
        return (type(self), (self.dsn,))

    @property
    def where(self) -> str:
        return self._where

    def _connect(self) -> Any:
        psycopg = import_optional("psycopg", feature="PostgresStore", extra="postgres")
        try:
            # Reads outside a write hold no transaction open (as sqlite3's do not);
            # _execute begins one at the first write, and commit() ends it.
            return psycopg.connect(self.dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(
                f"could not connect to the PostgreSQL store at {self.where}: {exc}"
            ) from None

    def _execute(self, statement: str, parameters: Sequence[Any] = ()) -> Any:
        with self._lock:
            try:
                if not statement.startswith("SELECT"):
                    self._begin()
                return super()._execute(statement, parameters)
            except StoreError:
                # PostgreSQL has aborted the transaction: end it, so the connection goes on.
                self._roll_back()
                raise

    def _begin(self) -> None:
        if self._connection.info.transaction_status == _IDLE:
            super()._execute("BEGIN")

    @contextlib.contextmanager
    def _writing(self) -> Iterator[object]:
        # The connection commits each statement by itself unless a transaction is open. The
        # write's statements go in one pipeline: one round trip to the server, not one each
        # (the commit ends it, raising the first error).
        with self._connection.pipeline() as pipeline:
            self._begin()
            yield pipeline

    def _check_foreign(self) -> None:
        # Stores opened at once by several processes prepare the tables one at a time.
        self._begin()
        self._execute("SELECT pg_advisory_xact_lock(hashtext('baxiflow_schema'))")
        schema = self._rows("SELECT current_schema()")[0][0]
        if schema is None:
            raise StoreError(
                f"the PostgreSQL store at {self.where} has no schema to keep its tables in "
                "(the search_path names none that exists); create it first"
            )
        found: dict[str, set[str]] = {}
        for table, column in self._rows(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = ? AND starts_with(table_name::text, 'baxiflow_')",
            (schema,),
        ):
            found.setdefault(table, set()).add(column)
        if found and "baxiflow_meta" not in found:
            raise StoreError(
                f"schema {schema!r} of {self.where} is not a baxiflow store: it holds "
                f"{', '.join(sorted(found))} but no baxiflow_meta; it was left untouched"
            )
        # A store of an older version lacks the columns added since; it is migrated next.
        for table, columns in table_columns(oldest=True).items():
            missing = sorted(columns - found.get(table, columns))
            if missing:
                raise StoreError(
                    f"schema {schema!r} of {self.where} is not a baxiflow store: its table "
                    f"{table} lacks {', '.join(missing)}; it was left untouched"
                )
