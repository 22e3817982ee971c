"""See a workflow's shape: diagrams of its handler registry and checks before running it.

The wing is named ``diagrams`` so that ``baxiflow.diagram`` stays the function that draws one.

>>> from baxiflow import WorkflowEvent, WorkflowManager
>>> from baxiflow.diagrams import diagram, validate
>>> workflow = WorkflowManager()
>>> @workflow.on("start")
... async def greet(event):
...     yield WorkflowEvent("greeted")
>>> diagram(workflow)
<Diagram: 2 events, 1 handler, 2 edges>
>>> validate(workflow).ok
True
"""

from baxiflow.diagrams._diagram import Diagram, diagram
from baxiflow.diagrams._emits import Inference, infer_emits
from baxiflow.diagrams._flowgraph import EmitsSource, FlowGraph, HandlerNode, flow_graph
from baxiflow.diagrams._overlay import TraceLike, TraceOverlay, trace_overlay
from baxiflow.diagrams._render import RENDERERS, Rendered, Renderer, dot_available, render
from baxiflow.diagrams._source import (
    RANKDIRS,
    DiagramSpec,
    Edge,
    EdgeKind,
    Node,
    NodeStyle,
    diagram_spec,
    to_dot,
    to_mermaid,
)
from baxiflow.diagrams._validate import Finding, Severity, ValidationReport, validate

__all__ = [
    "RANKDIRS",
    "RENDERERS",
    "Diagram",
    "DiagramSpec",
    "Edge",
    "EdgeKind",
    "EmitsSource",
    "Finding",
    "FlowGraph",
    "HandlerNode",
    "Inference",
    "Node",
    "NodeStyle",
    "Rendered",
    "Renderer",
    "Severity",
    "TraceLike",
    "TraceOverlay",
    "ValidationReport",
    "diagram",
    "diagram_spec",
    "dot_available",
    "flow_graph",
    "infer_emits",
    "render",
    "to_dot",
    "to_mermaid",
    "trace_overlay",
    "validate",
]
