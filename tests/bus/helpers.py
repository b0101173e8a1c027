"""Small builders shared by the bus tests."""

from __future__ import annotations

import ait


def inp(i: int, client: str = "alice") -> ait.Input:
    return ait.Input(
        event_id=f"e{i}", message_id=f"m{i}", role="user", client_id=client, payload={"n": i}
    )


def delta(i: int, message_id: str = "a1") -> ait.Output:
    return ait.Output(
        run_id="r1", message_id=message_id, role="assistant", parent="m0", payload=[{"i": i}]
    )
