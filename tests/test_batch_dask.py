"""run_many on a real two-process Dask cluster: shipping, streaming, a worker that dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

cloudpickle = pytest.importorskip("cloudpickle")
distributed = pytest.importorskip("distributed")

from test_store_postgres import dsn, server  # noqa: E402, F401 - the PostgreSQL fixtures

from baxiflow import WorkflowEvent, WorkflowManager, run_many  # noqa: E402
from baxiflow.batch import BatchDisplay, BatchState, _dask, _run  # noqa: E402

# The workers import baxiflow, not this test module: ship its handlers by value, as
# cloudpickle does on its own for a notebook's or a script's.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as cluster:
        yield cluster


def make_workflow(delay: float) -> WorkflowManager:
    workflow = WorkflowManager(name="batch")

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "fetching")
        await asyncio.sleep(delay)
        if event.data["n"] % 7 == 3:
            raise ValueError(f"no answer for {event.data['n']}")
        yield WorkflowEvent("done", {"value": event.data["n"] ** 2})

    return workflow


def starts(count: int) -> list[WorkflowEvent]:
    return [WorkflowEvent("start", {"n": n}) for n in range(count)]


def events_of(batch: Any) -> list[list[tuple[str, Any]]]:
    # A traceback names where the handler's code was loaded from: on a worker, pickled code.
    return [[(e.name, without_traceback(e.data)) for e in r.events] for r in batch.results]


def without_traceback(data: Any) -> Any:
    if isinstance(data, dict) and "traceback" in data:
        return {key: value for key, value in data.items() if key != "traceback"}
    return data


async def test_a_batch_on_the_cluster_equals_the_local_batch_and_streams_progress(
    cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []
    apply = _dask._Stream.apply

    def timed_apply(stream: Any, message: dict[str, Any]) -> None:
        seen.append(time.perf_counter())
        apply(stream, message)

    monkeypatch.setattr(_dask._Stream, "apply", timed_apply)
    views: list[BatchDisplay] = []

    def silent_view(state: BatchState) -> BatchDisplay:
        views.append(BatchDisplay(state))
        return views[-1]

    monkeypatch.setattr(_run, "batch_view", silent_view)
    workflow = make_workflow(delay=0.02)
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        batch = await run_many(workflow, starts(120), client=client, chunk_size=10)
        ended = time.perf_counter()
        streamed = len(seen)
        # Without a view, nothing streams while the batch runs.
        unseen = await run_many(workflow, starts(40), client=client, chunk_size=10, view=False)
    assert len(seen) == streamed and len(unseen.results) == 40
    assert views[0].state.done == 120 and views[0].redraws >= 1
    local = await run_many(workflow, starts(120), view=False)
    assert events_of(batch) == events_of(local)
    assert [r["status"] for r in batch.records] == [r["status"] for r in local.records]
    assert [index for index, _ in batch.failed] == [n for n in range(120) if n % 7 == 3]
    assert sorted(row["input_index"] for row in batch.trace.runs) == list(range(120))
    assert len(batch.trace.records) == len(local.trace.records)
    assert seen and seen[0] < ended - 0.1, "no progress reached the client while the batch ran"


async def test_the_same_workflow_runs_batch_after_batch_on_one_client(cluster: Any) -> None:
    # Each batch ships the workflow under a key of its own: the first one, ending, must not
    # take the second one's copy with it.
    workflow = make_workflow(delay=0.0)
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        for _ in range(3):
            batch = await run_many(workflow, starts(30), client=client, chunk_size=5, view=False)
            assert len(batch.results) == 30
            assert [index for index, _ in batch.failed] == [n for n in range(30) if n % 7 == 3]


def test_handlers_and_closures_from_main_run_on_the_cluster(cluster: Any, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import json
            from distributed import Client
            from baxiflow import WorkflowEvent, WorkflowManager, run_many_sync

            def build(offset):
                workflow = WorkflowManager()

                @workflow.on("start")
                async def add(event):
                    yield WorkflowEvent("done", {{"value": event.data["n"] + offset}})

                return workflow

            if __name__ == "__main__":
                with Client({cluster.scheduler_address!r}) as client:
                    batch = run_many_sync(
                        build(100), [WorkflowEvent("start", {{"n": n}}) for n in range(30)],
                        client=client, view=False, keep="summary",
                    )
                print(json.dumps([r.final.data["value"] for r in batch.results]))
            """
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [n + 100 for n in range(30)]


async def test_every_input_is_accounted_for_when_a_worker_dies_mid_batch(cluster: Any) -> None:
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        await client.wait_for_workers(2)
        pids = await client.run(os.getpid)
        victim = next(iter(pids.values()))
        task = asyncio.create_task(
            run_many(
                make_workflow(delay=0.05),
                starts(160),
                client=client,
                chunk_size=8,
                concurrency=2,
                view=False,
            )
        )
        await asyncio.sleep(0.7)  # the batch takes about 2 s
        assert not task.done()
        os.kill(victim, signal.SIGKILL)
        batch = await task
        assert [row["index"] for row in batch.records] == list(range(160))
        for index, result in enumerate(batch.results):
            if index % 7 == 3:
                assert result.status == "error"
            elif result.status != "ok":  # lost for good: the reason is given
                assert "Dask task" in (result.errors[-1].error or "")
        await client.wait_for_workers(2)


class Unloadable:
    """An observer that cannot be unpickled on a worker: every chunk fails there."""

    def __reduce__(self) -> Any:
        return (_refuse, ())

    def __call__(self, emitted: Any) -> None:
        pass


def _refuse() -> None:
    raise RuntimeError("this observer refuses to be unpickled")


async def test_a_chunk_that_fails_for_good_reports_its_inputs_failed_with_the_reason(
    cluster: Any,
) -> None:
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        batch = await run_many(
            make_workflow(delay=0),
            starts(6),
            client=client,
            chunk_size=3,
            observers=[Unloadable()],
            view=False,
        )
    assert len(batch.results) == 6 and len(batch.failed) == 6
    reason = batch.records[0]["error"]
    assert "the Dask task running inputs 0..2 failed" in reason
    assert "refuses to be unpickled" in reason


def logged_batch_workflow() -> WorkflowManager:
    workflow = WorkflowManager(name="logged")

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.01)
        if event.data["n"] % 7 == 3:
            raise ValueError(f"no answer for {event.data['n']}")
        yield WorkflowEvent("done", {"value": event.data["n"] ** 2, "pid": os.getpid()})

    return workflow


async def check_every_run_is_logged(store: Any, batch: Any) -> None:
    assert len(batch.results) == 40
    assert [index for index, _ in batch.failed] == [n for n in range(40) if n % 7 == 3]
    logged = {row["run_id"]: row for row in store.runs()}
    assert {row["run_id"] for row in batch.records} <= set(logged)
    for row, result in zip(batch.records, batch.results, strict=True):
        assert logged[row["run_id"]]["status"] == "finished"
        assert [e.event.name for e in store.logged(row["run_id"])] == [
            e.name for e in result.events
        ]


def writers(store: Any, batch: Any) -> set[int]:
    """The worker processes that logged the batch's runs (each names its pid in "done")."""
    done = [e.event for row in batch.records for e in store.logged(row["run_id"])]
    return {event.data["pid"] for event in done if event.name == "done"}


async def logged_batch_on(cluster: Any, store: Any) -> Any:
    """40 runs on ``cluster``'s workers, logged to ``store``; checks each run's log."""
    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        batch = await run_many(
            logged_batch_workflow(), starts(40), client=client, chunk_size=4, view=False,
            store=store,
        )  # fmt: skip
    await check_every_run_is_logged(store, batch)
    return batch


async def test_a_batch_on_the_cluster_logs_every_run_in_one_sqlite_store(
    cluster: Any, tmp_path: Path
) -> None:
    from baxiflow.store import SQLiteStore

    store = SQLiteStore(tmp_path / "runs.db")
    batch = await logged_batch_on(cluster, store)
    assert len(writers(store, batch)) == 2
    store.close()


def test_a_pickled_sqlite_store_never_opens_a_new_file_elsewhere(tmp_path: Path) -> None:
    import pickle

    from baxiflow.exceptions import StoreError
    from baxiflow.store import SQLiteStore

    store = SQLiteStore(tmp_path / "runs.db")
    shipped = pickle.dumps(store)
    store.close()
    (tmp_path / "runs.db").rename(tmp_path / "moved.db")
    with pytest.raises(StoreError, match="is not on this machine"):
        pickle.loads(shipped)
    assert not (tmp_path / "runs.db").exists()


async def test_a_store_that_cannot_be_shipped_is_refused_before_anything_runs(
    cluster: Any,
) -> None:
    class LocalOnly:
        def __reduce__(self) -> Any:
            raise TypeError("this store holds a connection")

        def check_event(self, event: WorkflowEvent) -> None:
            return None

    async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
        with pytest.raises(TypeError, match="store= on Dask: a LocalOnly cannot be shipped"):
            await run_many(
                logged_batch_workflow(), starts(4), client=client, view=False,
                store=LocalOnly(),
            )  # fmt: skip


async def test_a_batch_on_the_cluster_logs_every_run_in_one_postgres_store(
    cluster: Any,
    dsn: str,  # noqa: F811 - the fixture imported above
) -> None:
    import psycopg

    from baxiflow.store import PostgresStore

    def connections() -> int:
        with psycopg.connect(dsn) as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            return int(connection.execute(query).fetchone()[0])  # type: ignore[index]

    store = PostgresStore(dsn)
    before = connections()
    batch = await logged_batch_on(cluster, store)
    # Each worker opened the store from its DSN, and closed it when the batch ended.
    assert len(writers(store, batch)) == 2
    assert connections() == before
    store.close()
