"""Trace files at their edges: bytes that are not UTF-8, and data nested very deeply."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from baxiflow import WorkflowEvent, WorkflowManager
from baxiflow.exceptions import TraceFormatError
from baxiflow.trace import Trace, record
from baxiflow.trace._jsonable import from_jsonable, to_jsonable


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"inner": value}
    return value


def deepest_json_can_write() -> int:
    low, high = 1, 100_000
    while low + 1 < high:
        middle = (low + high) // 2
        try:
            json.dumps(nested(middle))
        except RecursionError:
            high = middle
        else:
            low = middle
    return low


def same(left: Any, right: Any) -> bool:
    """``left == right`` for values nested deeper than ``==`` can compare."""
    pending = [(left, right)]
    while pending:
        a, b = pending.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, dict):
            if list(a) != list(b):
                return False
            pending.extend((a[key], b[key]) for key in a)
        elif isinstance(a, list | tuple):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif a != b:
            return False
    return True


async def trace_with(data: Any) -> Trace:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def emit(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("deep", data={"payload": data})

    return await record(workflow, WorkflowEvent("start"))


def test_from_jsonl_on_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(b"\xff\xfe" + '{"format": "baxiflow-trace"}\n'.encode("utf-16-le"))
    with pytest.raises(TraceFormatError, match=re.escape(f"{path} line 1: not UTF-8 text")):
        Trace.from_jsonl(path)


def test_from_jsonl_names_the_later_line_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    buffer = io.StringIO()
    Trace().to_jsonl(buffer)
    path.write_bytes(buffer.getvalue().encode() + b"\n" + b'{"span": "\xe9t\xe9"}\n')
    with pytest.raises(TraceFormatError, match=r"line 3: not UTF-8 text"):
        Trace.from_jsonl(path)


def test_from_jsonl_on_a_binary_stream_opened_as_text_names_the_line() -> None:
    stream = io.TextIOWrapper(io.BytesIO(b"\xff\xfe{}\n"), encoding="utf-8")
    with pytest.raises(TraceFormatError, match=r"line 1: not UTF-8 text"):
        Trace.from_jsonl(stream)


async def test_to_jsonl_writes_and_reads_back_data_nested_500_deep(tmp_path: Path) -> None:
    data = nested(500)
    trace = await trace_with(data)
    path = tmp_path / "deep.jsonl"
    trace.to_jsonl(path)
    assert Trace.from_jsonl(path).records == trace.records


async def test_to_jsonl_encodes_as_deep_as_json_itself(tmp_path: Path) -> None:
    # The row around the data and to_jsonl's own calls take a few levels of json's limit.
    depth = deepest_json_can_write() - 10
    assert depth > 900
    trace = await trace_with(nested(depth))
    buffer = io.StringIO()
    trace.to_jsonl(buffer)
    assert json.dumps(nested(depth)) in buffer.getvalue()


def test_jsonable_conversion_needs_no_stack_at_any_depth() -> None:
    data = nested(50_000)
    tuples: Any = ()
    for _ in range(50_000):
        tuples = (tuples, {1: "non-string key"})
    assert same(from_jsonable(to_jsonable(data)), data)
    assert same(from_jsonable(to_jsonable(tuples)), tuples)
    assert not same(from_jsonable(to_jsonable(tuples)), data)


async def test_to_jsonl_too_deep_for_json_raises_clearly_and_keeps_the_old_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kept.jsonl"
    path.write_text("what was there before\n", encoding="utf-8")
    trace = await trace_with(nested(100_000))
    with pytest.raises(
        TraceFormatError, match=r"record 1 .* nested too deeply .*nothing was written"
    ):
        trace.to_jsonl(path)
    assert path.read_text(encoding="utf-8") == "what was there before\n"
    stream = io.StringIO()
    with pytest.raises(TraceFormatError):
        trace.to_jsonl(stream)
    assert stream.getvalue() == ""


def test_from_jsonl_of_a_line_nested_too_deeply_names_the_line() -> None:
    buffer = io.StringIO()
    Trace().to_jsonl(buffer)
    deep = '{"record": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
    with pytest.raises(TraceFormatError, match=r"<stream> line 2: nested too deeply"):
        Trace.from_jsonl(io.StringIO(buffer.getvalue() + deep))


# Files older baxiflow wrote ---------------------------------------------------------

OLD_FILES = Path(__file__).parent / "trace_files"
"""Trace files written verbatim by earlier versions of baxiflow, for the same two-handler
run whose second handler fails: version 1 had no ``traceback`` column in its records,
versions 1 and 2 no ``attempt`` column in their spans."""


@pytest.mark.parametrize("version", [1, 2])
def test_a_trace_file_an_older_baxiflow_wrote_still_loads(version: int) -> None:
    path = OLD_FILES / f"written_by_version_{version}.jsonl"
    written = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert written[0]["version"] == version

    loaded = Trace.from_jsonl(path)

    assert [(s["handler"], s["status"], s["attempt"]) for s in loaded.spans] == [
        ("search", "ok", 1),
        ("answer", "error", 1),
    ]
    assert [{k: v for k, v in s.items() if k != "attempt"} for s in loaded.spans] == [
        line["span"] for line in written if "span" in line
    ]
    assert [r["event"] for r in loaded.records] == ["question", "found", "error"]
    error = loaded.records[-1]
    assert (error["error"], error["error_type"]) == ("model down", "ConnectionError")
    assert (error["traceback"] is None) == (version == 1)
    assert loaded.runs == [line["run"] for line in written if "run" in line]
    assert "answer" in loaded.summary()


def test_an_older_trace_file_written_again_has_the_current_columns(tmp_path: Path) -> None:
    loaded = Trace.from_jsonl(OLD_FILES / "written_by_version_1.jsonl")
    path = tmp_path / "again.jsonl"

    loaded.to_jsonl(path)
    again = Trace.from_jsonl(path)

    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["version"] == 3
    assert (again.records, again.spans, again.runs) == (loaded.records, loaded.spans, loaded.runs)
    assert '"attempt": 1' in path.read_text(encoding="utf-8")
    assert '"traceback": null' in path.read_text(encoding="utf-8")


def test_a_span_row_missing_a_column_other_than_attempt_is_refused(tmp_path: Path) -> None:
    written = (OLD_FILES / "written_by_version_2.jsonl").read_text(encoding="utf-8")
    path = tmp_path / "cut.jsonl"
    path.write_text(written.replace('"emitted": 1, ', ""), encoding="utf-8")

    with pytest.raises(TraceFormatError, match=re.escape(f"{path} line 6: a span row must have")):
        Trace.from_jsonl(path)
