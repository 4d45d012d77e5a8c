"""The transport reads a fetched message's delivery count and stream sequence from its ack subject
itself (two ints per message instead of nats-py's metadata objects): it must read what nats-py reads,
in the subject's short form and, through nats-py, in the long one (a domain and an account hash)."""

from __future__ import annotations

import pytest
from nats.aio.msg import Msg

from workbench.serving.nats_transport import _delivery

SUBJECTS = [
    "$JS.ACK.WORKBENCH_DEMO.WORKBENCH_DEMO_scorer.1.1.1.1733400000000000000.0",
    "$JS.ACK.WORKBENCH_DEMO.WORKBENCH_DEMO_scorer.5.987654321.120.1733400000000000000.42",
    "$JS.ACK._.ACCOUNTHASH.WORKBENCH_DEMO.WORKBENCH_DEMO_scorer.3.1234.1200.1733400000000000000.17.r4nd",
    "$JS.ACK.hub.ACCOUNTHASH.WORKBENCH_DEMO.WORKBENCH_DEMO_scorer.2.77.70.1733400000000000000.0.r4nd",
]


@pytest.mark.parametrize("reply", SUBJECTS)
def test_delivery_and_sequence_are_what_nats_py_reads(reply: str) -> None:
    msg = Msg(_client=None, subject="workbench.demo.features", reply=reply, data=b"{}")  # type: ignore[arg-type]
    meta = Msg(_client=None, subject="workbench.demo.features", reply=reply, data=b"{}").metadata  # type: ignore[arg-type]
    assert _delivery(msg) == (meta.num_delivered, meta.sequence.stream)
