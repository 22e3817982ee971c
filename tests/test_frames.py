"""DataFrames as users see them in notebooks: tidy dtypes, counts as integers, one missing marker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd

import baxiflow
from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.batch._result import _OUTCOME_KINDS, OUTCOME_COLUMNS
from baxiflow.store import SQLiteStore
from baxiflow.store._sqlite import _RUN_KINDS
from baxiflow.store._sqlite import RUN_COLUMNS as STORE_RUN_COLUMNS
from baxiflow.trace import RECORD_COLUMNS, SPAN_COLUMNS, record
from baxiflow.trace._trace import _RECORD_KINDS, _SPAN_KINDS


def test_every_table_column_has_a_dtype_rule() -> None:
    assert list(_RECORD_KINDS) == list(RECORD_COLUMNS)
    assert list(_SPAN_KINDS) == list(SPAN_COLUMNS)
    assert list(_OUTCOME_KINDS) == list(OUTCOME_COLUMNS)
    assert list(_RUN_KINDS) == list(STORE_RUN_COLUMNS)


def failing_flow(current: float = 1) -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def fetch(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("fetch", "pages", current=current, total=2)
        yield WorkflowEvent("fetched", {"pages": 2})

    @workflow.on("fetched")
    async def parse(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise ValueError("unreadable page")
        yield event

    return workflow


def dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {name: str(dtype).split("[")[0] for name, dtype in frame.dtypes.items()}


def shows_only_one_missing_marker(frame: pd.DataFrame) -> bool:
    text = frame.drop(columns=[c for c in ("data", "metadata") if c in frame]).to_string()
    return "<NA>" in text and "NaN" not in text and "None" not in text


async def test_trace_frames_have_tidy_dtypes_and_show_missing_values_as_na() -> None:
    trace = await record(failing_flow(), WorkflowEvent("start"))

    events, spans = trace.to_pandas()

    assert dtypes(events) == {
        "run_id": "string",
        "seq": "Int64",
        "parent_seq": "Int64",
        "depth": "Int64",
        "event": "string",
        "kind": "category",
        "handler": "string",
        "step": "string",
        "description": "string",
        "current": "Int64",
        "total": "Int64",
        "error": "string",
        "error_type": "string",
        "traceback": "string",
        "elapsed": "float64",
        "timestamp": "datetime64",
        "data": "object",
        "metadata": "object",
    }
    assert list(events.kind) == ["event", "progress", "event", "error"]
    assert events.timestamp.dt.tz is not None
    assert abs(events.timestamp[0].timestamp() - trace.records[0]["timestamp"]) < 1e-3
    assert shows_only_one_missing_marker(events)
    assert dtypes(spans)["status"] == "category" and dtypes(spans)["emitted"] == "Int64"
    assert list(spans.status) == ["ok", "error"]
    assert dtypes(spans)["duration"] == "float64"
    assert shows_only_one_missing_marker(spans)


async def test_a_progress_column_with_a_fraction_is_nullable_floats_the_other_stays_whole() -> None:
    trace = await record(failing_flow(current=0.5), WorkflowEvent("start"))

    events, _ = trace.to_pandas()

    assert str(events.current.dtype) == "Float64"
    assert str(events.total.dtype) == "Int64"
    assert events.current[1] == 0.5 and events.current.isna().sum() == 3


async def test_flattened_trace_frames_keep_the_dtypes_and_add_data_columns() -> None:
    trace = await record(failing_flow(), WorkflowEvent("start"))

    events, _ = trace.to_pandas(flatten=True)

    assert "data" not in events and "data.pages" in events
    assert dtypes(events)["parent_seq"] == "Int64" and dtypes(events)["kind"] == "category"


async def test_batch_frames_have_tidy_dtypes() -> None:
    batch = await baxiflow.run_many(failing_flow(), [WorkflowEvent("start")] * 3, view=False)

    frame = batch.to_pandas()

    assert dtypes(frame) == {
        "index": "Int64",
        "run_id": "string",
        "status": "category",
        "final": "string",
        "error": "string",
        "events": "Int64",
        "duration": "float64",
    }
    assert frame.groupby("status", observed=True).size().to_dict() == {"error": 3}


async def test_store_runs_frame_has_times_and_a_nullable_fork_point(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "runs.db")
    workflow = failing_flow()
    async for _ in workflow.process(WorkflowEvent("start"), store=store, run_id="first"):
        pass
    async for _ in workflow.replay((store, "first"), from_seq=2, store=store, run_id="fork"):
        pass

    frame = store.to_pandas()

    assert dtypes(frame) == {
        "run_id": "string",
        "status": "category",
        "workflow_name": "string",
        "fingerprint": "string",
        "created": "datetime64",
        "updated": "datetime64",
        "parent_run_id": "string",
        "fork_seq": "Int64",
    }
    assert list(frame.fork_seq.astype(object)) == [pd.NA, 2]
    assert list(frame.parent_run_id.astype(object)) == [pd.NA, "first"]
    assert shows_only_one_missing_marker(frame)
    store.close()
