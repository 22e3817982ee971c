"""Live progress of workflow runs: ipywidgets bars in a notebook, tqdm bars in a terminal.

>>> from baxiflow.progress import ProgressObserver, progress_view
>>> view = progress_view()  # outside a notebook: the terminal display
>>> type(view).__name__, isinstance(view, ProgressObserver)
('TerminalProgress', True)
"""

from baxiflow.progress._state import (
    BarStyle,
    ProgressObserver,
    RunProgress,
    StepState,
    StepStatus,
    request_text,
)
from baxiflow.progress._terminal import TerminalProgress
from baxiflow.progress._throttle import Throttle
from baxiflow.progress._widgets import (
    ProgressView,
    RequestRow,
    RunPanel,
    StepRow,
    in_notebook,
    progress_view,
    widget_mimebundle,
)

__all__ = [
    "BarStyle",
    "ProgressObserver",
    "ProgressView",
    "RequestRow",
    "RunPanel",
    "RunProgress",
    "StepRow",
    "StepState",
    "StepStatus",
    "TerminalProgress",
    "Throttle",
    "in_notebook",
    "progress_view",
    "request_text",
    "widget_mimebundle",
]
