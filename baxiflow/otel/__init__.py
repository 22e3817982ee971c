"""Export baxiflow runs to OpenTelemetry: a span per run, a child span per handler call.

Needs the ``otel`` extra (``opentelemetry-api``); ``import baxiflow.otel`` works without it,
and making an :class:`OpenTelemetryObserver` says what to install.

>>> from opentelemetry.sdk.trace import TracerProvider
>>> from baxiflow import WorkflowManager
>>> from baxiflow.otel import OpenTelemetryObserver
>>> workflow = WorkflowManager(observers=[OpenTelemetryObserver(TracerProvider())])
"""

from baxiflow.otel._observer import OpenTelemetryObserver

__all__ = ["OpenTelemetryObserver"]
