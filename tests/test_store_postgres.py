"""Durable runs in PostgreSQL: the SQLite store's behaviours on a real server, and its own faults.

The tests need a server: ``BAXIFLOW_TEST_POSTGRES`` names it with a ``postgresql://`` DSN
(``.ci/run`` starts a throwaway one and sets it). Without one they skip, saying why; in CI
(``CI`` set) they fail instead. Each test gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The behaviours both stores share, run here on this module's fixtures of the same names.
from test_store import (  # noqa: F401
    OLD_COLUMNS,
    OLD_TABLES,
    collect,
    counting_workflow,
    kill_at_random_points_and_resume,
    old_rows,
    test_a_call_killed_in_a_retry_pause_that_fails_again_ends_with_one_error_for_all_attempts,
    test_a_changed_registry_resumes_each_logged_call_as_the_registration_it_was,
    test_a_logged_run_holds_every_event_it_yielded_with_its_data,
    test_a_process_killed_in_a_retry_pause_resumes_the_call_from_its_next_attempt,
    test_a_process_killed_in_the_second_call_of_a_handler_registered_twice_resumes_that_call,
    test_a_run_cancelled_in_a_retry_pause_resumes_from_the_next_attempt,
    test_a_run_past_the_calls_one_log_can_key_stops_with_a_log_error,
    test_a_run_past_the_events_one_log_can_key_stops_with_a_log_error,
    test_a_run_stopped_by_its_consumer_resumes_without_repeating_anything,
    test_a_run_that_ends_while_it_is_being_resumed_is_refused_as_ended,
    test_a_second_process_cannot_resume_a_run_that_is_being_run,
    test_a_store_of_an_older_schema_version_is_migrated_and_its_runs_go_on,
    test_deleting_a_run_removes_its_log_and_leaves_the_others_whole,
    test_durability_decides_what_another_reader_sees_during_the_run,
    test_each_registry_is_kept_once_and_every_run_names_its_own,
    test_replay_forks_a_run_from_an_event_with_a_changed_handler,
    test_resuming_is_refused_for_finished_unknown_and_changed_runs,
    test_store_objects_sharing_a_database_number_their_runs_apart,
    test_the_stored_trace_has_a_span_for_each_attempt_as_the_trace_in_memory,
)

from baxiflow import WorkflowEvent
from baxiflow.exceptions import MissingDependencyError, StoreError
from baxiflow.store import PostgresStore

SERVER_VARIABLE = "BAXIFLOW_TEST_POSTGRES"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (in CI the PostgreSQL tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server() -> str:
    """The DSN of the test server, or a skip (a failure in CI) saying why there is none."""
    dsn = os.environ.get(SERVER_VARIABLE, "")
    if not dsn:
        _unavailable(
            f"no PostgreSQL server for the tests: set {SERVER_VARIABLE} to a postgresql:// "
            "DSN (.ci/run starts a throwaway server and sets it)"
        )
    if not dsn.startswith("postgresql://"):
        pytest.fail(f"{SERVER_VARIABLE} must be a postgresql:// DSN, got {dsn!r}")
    try:
        import psycopg

        psycopg.connect(dsn, connect_timeout=5).close()
    except Exception as exc:
        _unavailable(f"the PostgreSQL server in {SERVER_VARIABLE} cannot be reached: {exc}")
    return dsn


def _admin(server: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture
def dsn(server: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema of this test's own."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    _admin(server, f'CREATE SCHEMA "{schema}"')
    yield f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema}"
    _admin(server, f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def open_store(dsn: str) -> Iterator[Callable[[], PostgresStore]]:
    """Opens another store object on the test's schema (as another process would)."""
    opened: list[PostgresStore] = []

    def open_one() -> PostgresStore:
        opened.append(PostgresStore(dsn))
        return opened[-1]

    yield open_one
    for one in opened:
        one.close()


@pytest.fixture
def store(open_store: Callable[[], PostgresStore]) -> PostgresStore:
    return open_store()


@pytest.fixture
def target(dsn: str) -> str:
    """The store as a subprocess names it."""
    return dsn


@pytest.fixture
def write_old_version(dsn: str) -> Callable[[Any, int], None]:
    """Writes the test's schema as an older schema version held the runs of ``source``."""
    import psycopg

    def write(source: Any, version: int) -> None:
        with psycopg.connect(dsn) as connection:
            for statement in OLD_TABLES[version]:
                connection.execute(statement.format(real="DOUBLE PRECISION", int="BIGINT"))
            for table, columns in OLD_COLUMNS[version].items():
                marks = ", ".join(["%s"] * (columns.count(",") + 1))
                with connection.cursor() as cursor:
                    cursor.executemany(
                        f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                        old_rows(source, table, columns, version),
                    )
            connection.execute(
                "UPDATE baxiflow_meta SET value = %s WHERE key = 'version'", (str(version),)
            )

    return write


@pytest.fixture
def committed(dsn: str) -> Callable[[], int]:
    """How many events the store's log holds committed, as another connection sees it."""
    import psycopg

    def count() -> int:
        with psycopg.connect(dsn, autocommit=True) as reader:
            row = reader.execute("SELECT count(*) FROM baxiflow_events").fetchone()
            return int(row[0]) if row else 0

    return count


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the probe is


def test_an_unreachable_server_is_a_store_error_naming_the_dsn_without_its_password() -> None:
    pytest.importorskip("psycopg")
    port = _closed_port()
    with pytest.raises(StoreError) as raised:
        PostgresStore(f"postgresql://ada:s3cret@127.0.0.1:{port}/runs")
    message = str(raised.value)
    assert f"postgresql://ada@127.0.0.1:{port}/runs" in message
    assert "s3cret" not in message and "s3cret" not in repr(raised.value.__cause__)


def test_without_psycopg_the_store_names_the_extra_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from baxiflow.store import PostgresStore\n"
        "try:\n    PostgresStore('postgresql://127.0.0.1/x')\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.startswith(MissingDependencyError.__name__), result.stderr
    assert "PostgresStore needs the 'psycopg' package" in result.stdout
    assert "baxiflow[postgres]" in result.stdout


def test_tables_named_like_baxiflow_without_its_meta_table_are_refused_untouched(
    server: str, dsn: str
) -> None:
    schema = dsn.rpartition("%3D")[2]
    _admin(server, f'CREATE TABLE "{schema}".baxiflow_runs (id INTEGER)')
    with pytest.raises(StoreError, match="not a baxiflow store: it holds baxiflow_runs but no"):
        PostgresStore(dsn)
    _admin(server, f'DROP TABLE "{schema}".baxiflow_runs')
    _admin(server, f'CREATE TABLE "{schema}".invoices (id INTEGER)')  # another app's: fine
    PostgresStore(dsn).close()


def test_a_baxiflow_table_of_the_wrong_shape_and_a_newer_schema_are_refused(
    server: str, dsn: str
) -> None:
    schema = dsn.rpartition("%3D")[2]
    PostgresStore(dsn).close()
    _admin(server, f'ALTER TABLE "{schema}".baxiflow_events DROP COLUMN reused')
    with pytest.raises(StoreError, match="its table baxiflow_events lacks reused"):
        PostgresStore(dsn)
    _admin(server, f'DROP TABLE "{schema}".baxiflow_events')
    _admin(server, f"UPDATE \"{schema}\".baxiflow_meta SET value = '99' WHERE key = 'version'")
    with pytest.raises(StoreError, match="schema version 99, newer"):
        PostgresStore(dsn)


def test_a_missing_schema_is_refused(server: str) -> None:
    sep = "&" if "?" in server else "?"
    with pytest.raises(StoreError, match="no schema to keep its tables in"):
        PostgresStore(f"{server}{sep}options=-csearch_path%3Dno_such_schema_here")


async def test_a_run_whose_server_goes_away_is_never_marked_finished(
    store: PostgresStore, open_store: Callable[[], PostgresStore], dsn: str
) -> None:
    """The server's side of the connection is ended mid-run (as a server restart does)."""
    workflow = counting_workflow([])
    stream = workflow.process(WorkflowEvent("start"), store=store, run_id="cut", durability="sync")
    first = [await anext(stream), await anext(stream)]
    _admin(dsn, f"SELECT pg_terminate_backend({store._connection.info.backend_pid})")
    rest = await collect(stream)
    # The run stops at its next commit, with an error event saying why.
    assert rest[-1].name == "error" and rest[-1].data is not None
    assert rest[-1].data["reason"] == "log_failed" and "postgresql://" in str(rest[-1].error)
    assert [e.name for e in first + rest].count("done") < 3

    other = open_store()
    (row,) = other.runs()
    assert row["status"] == "running"  # not finished: its last events were never committed
    logged = other.logged("cut")
    assert [e.seq for e in logged] == list(range(len(logged))) and len(logged) == 2
    # Once its lease has run out, another process goes on with it from where the log ends.
    _admin(dsn, "UPDATE baxiflow_runs SET lease_until = 0")
    await collect(workflow.resume("cut", other))
    assert [e.event.name for e in other.logged("cut")].count("done") == 3
    assert other.runs()[0]["status"] == "finished"


async def test_a_failed_write_on_the_same_store_drops_nothing_of_another_run(
    store: PostgresStore,
) -> None:
    calm = counting_workflow([]).process(WorkflowEvent("start"), store=store, run_id="calm")
    seen = [await anext(calm), await anext(calm)]  # "calm" holds rows not committed yet
    with pytest.raises(StoreError):
        store._execute("INSERT INTO baxiflow_meta (key, value) VALUES ('version', 'x')")
    # The failed statement's transaction is rolled back; "calm"'s rows wait in memory until
    # its own commit, so none of them was in it.
    seen += await collect(calm)
    assert all(event.name != "error" for event in seen)
    assert [logged.event for logged in store.logged("calm")] == seen
    assert [row["status"] for row in store.runs()] == ["finished"]


async def test_runs_killed_at_random_points_resume_to_exactly_the_uninterrupted_log(
    dsn: str,
) -> None:
    import psycopg

    def begun(run_id: str) -> bool:
        with psycopg.connect(dsn, autocommit=True) as reader:
            if reader.execute("SELECT to_regclass('baxiflow_runs')").fetchone() == (None,):
                return False  # the first store is still being made
            query = "SELECT 1 FROM baxiflow_runs WHERE run_id = %s"
            return reader.execute(query, (run_id,)).fetchone() is not None

    # Kills spread over the run once it has begun: the interpreter's start is not spent on.
    await kill_at_random_points_and_resume(
        dsn, lambda: PostgresStore(dsn), kills=12, span=0.4, begun=begun
    )
