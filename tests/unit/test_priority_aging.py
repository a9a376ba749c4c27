"""Run priority's aging (issue #21): new messages go no higher than the queue's aged
attempts, so that low ones are not starved."""

from __future__ import annotations

import pytest

from roost_core.engine.priority import effective


@pytest.mark.parametrize(
    ("priority", "floor", "sent"),
    [
        (3, None, 3),  # nothing aged: as asked
        (1, None, 1),
        (3, 1, 1),  # a low attempt has waited too long: it goes first now
        (3, 2, 2),
        (2, 3, 2),  # an aged higher one changes nothing for a lower run
        (1, 1, 1),
    ],
)
def test_a_message_goes_no_higher_than_its_queues_aged_attempts(
    priority: int, floor: int | None, sent: int
) -> None:
    assert effective(priority, floor) == sent
