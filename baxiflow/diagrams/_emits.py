"""Infer which events a handler emits by reading its source: literal names in ``WorkflowEvent(...)``.

>>> from baxiflow import WorkflowEvent
>>> async def route(event):
...     yield WorkflowEvent.progress("route", "choosing")
...     if event.data["ok"]:
...         yield WorkflowEvent("accepted")
...     else:
...         yield WorkflowEvent(name="rejected", data=event.data)
>>> infer_emits(route)
Inference(names=('accepted', 'rejected'), complete=True)
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from baxiflow.event import ERROR, PROGRESS, WorkflowEvent

__all__ = ["Inference", "infer_emits"]

_ERROR_FACTORIES = frozenset({"failure", "from_exception"})
"""``WorkflowEvent`` class methods that always make an ``"error"`` event."""

_ANY_FACTORIES = frozenset({"progress", *_ERROR_FACTORIES})


@dataclass(frozen=True, slots=True)
class Inference:
    """What reading a handler's source tells about the events it emits.

    Attributes:
        names: Event names found as literals, sorted; ``"progress"`` is never listed.
        complete: ``False`` when the handler may emit events the source does not name:
            a ``WorkflowEvent`` built from a computed name, or a ``yield`` of anything
            but a ``WorkflowEvent(...)`` call (``yield event``, ``yield make_event()``).
    """

    names: tuple[str, ...]
    complete: bool


def infer_emits(handler: Callable[..., Any]) -> Inference | None:
    """Read ``handler``'s source and list the event names it builds as literals.

    Recognised: ``WorkflowEvent("name", ...)`` and ``WorkflowEvent(name="name", ...)``
    (also under another import name or as ``module.WorkflowEvent``), both branches of
    ``WorkflowEvent("a" if ok else "b")``, and ``WorkflowEvent.failure(...)`` /
    ``WorkflowEvent.from_exception(...)``, which make ``"error"`` events. Progress events
    are left out: they never route to handlers.

    Args:
        handler: A handler function, a ``functools.partial`` of one, or an object whose
            ``__call__`` is the handler.

    Returns:
        The :class:`Inference`, or ``None`` when the source cannot be read (built-ins,
        code typed at a plain REPL, stripped deployments).

    >>> async def echo(event):
    ...     yield event
    >>> infer_emits(echo)
    Inference(names=(), complete=False)
    """
    return _infer(_function_of(handler))


def _function_of(handler: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(handler, functools.partial):
        handler = handler.func
    if not inspect.isroutine(handler):
        handler = type(handler).__call__
    unwrapped: Callable[..., Any] = inspect.unwrap(handler)
    return unwrapped


@functools.lru_cache(maxsize=1024)
def _infer(function: Callable[..., Any]) -> Inference | None:
    try:
        source = textwrap.dedent(inspect.getsource(function))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    definition = next(
        (n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)), None
    )
    if definition is None:
        return None
    names: set[str] = set()
    complete = True
    constructors: set[int] = set()
    for node in _walk_body(definition):
        if isinstance(node, ast.Call):
            found = _event_names(node, function)
            if found is None:
                continue
            constructors.add(id(node))
            literal, computed = found
            names.update(literal)
            complete = complete and not computed
    for node in _walk_body(definition):
        if isinstance(node, ast.Yield) and id(node.value) not in constructors:
            complete = False
    names.discard(PROGRESS)
    return Inference(tuple(sorted(names)), complete)


def _walk_body(definition: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.AST]:
    # The body only: decorators and defaults run once at definition, not per event.
    for statement in definition.body:
        yield from ast.walk(statement)


def _event_names(call: ast.Call, function: Callable[..., Any]) -> tuple[set[str], bool] | None:
    """Literal names built by ``call`` and whether some name is computed; ``None`` if no event."""
    target = call.func
    if isinstance(target, ast.Attribute) and target.attr in _ANY_FACTORIES:
        if not _is_event_class(target.value, function):
            return None
        return ({ERROR} if target.attr in _ERROR_FACTORIES else set()), False
    if not _is_event_class(target, function):
        return None
    argument = call.args[0] if call.args else None
    for keyword in call.keywords:
        if keyword.arg == "name":
            argument = keyword.value
    if argument is None:
        return set(), True
    return _literals(argument)


def _literals(expression: ast.expr) -> tuple[set[str], bool]:
    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
        return {expression.value}, False
    if isinstance(expression, ast.IfExp):
        body, body_computed = _literals(expression.body)
        orelse, orelse_computed = _literals(expression.orelse)
        return body | orelse, body_computed or orelse_computed
    return set(), True


def _is_event_class(expression: ast.expr, function: Callable[..., Any]) -> bool:
    if isinstance(expression, ast.Attribute):
        return expression.attr == WorkflowEvent.__name__
    if not isinstance(expression, ast.Name):
        return False
    value = _lookup(function, expression.id)
    if value is _MISSING:
        # Imported inside the function or not bound yet: trust the conventional name.
        return expression.id == WorkflowEvent.__name__
    return isinstance(value, type) and issubclass(value, WorkflowEvent)


_MISSING = object()


def _lookup(function: Callable[..., Any], name: str) -> object:
    code = getattr(function, "__code__", None)
    closure = getattr(function, "__closure__", None) or ()
    if code is not None and name in code.co_freevars:
        try:
            return closure[code.co_freevars.index(name)].cell_contents
        except ValueError:  # an empty cell: the enclosing variable is not assigned yet
            return _MISSING
    namespace = getattr(function, "__globals__", {})
    if name in namespace:
        return namespace[name]
    return getattr(builtins, name, _MISSING)
