"""A stand-in for the kernel's widget comm that counts messages instead of sending them.

The benchmarks that count widget state updates install it with ``comm.create_comm``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

from comm.base_comm import BaseComm


class CountingComm(BaseComm):
    """Stands in for the kernel's comm: counts messages instead of sending them."""

    sent: ClassVar[Counter[str]] = Counter()

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        if msg_type == "comm_msg" and isinstance(data, dict):
            msg_type = data.get("method", msg_type)
        CountingComm.sent[msg_type] += 1
