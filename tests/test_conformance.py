"""Every wire format, decoded by its real JavaScript client, shows what the run sent.

Each scenario of ``conformance_scenarios`` runs for real (``create_run``, on
asyncio and on trio); its chunks go through every encoder chunk by chunk
(``open()``, ``encode()``, ``finish(status)``), and every body is decoded in
one node process by the npm client of its format. The client must not throw or
warn, and what it shows must equal the run's own :class:`AssistantMessage`
and outcome, projected onto what the format carries (``conformance_helpers``).
"""

from __future__ import annotations

from typing import Any

import pytest
from conformance_helpers import FORMATS, Decoded, client_view, decode_all, encode, encoder_for, expected_view
from conformance_scenarios import SCENARIOS, Captured, capture_all


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, str], Captured]:
    return capture_all(SCENARIOS)


INITIAL_STATE = {scenario.name: scenario.state for scenario in SCENARIOS}


@pytest.fixture(scope="module")
def decoded(runs: dict[tuple[str, str], Captured]) -> dict[tuple[str, str, str], Decoded]:
    keys = [(backend, name, fmt) for (backend, name) in runs for fmt in FORMATS]
    items = []
    for backend, name, fmt in keys:
        captured, state = runs[backend, name], INITIAL_STATE[name]
        items.append((fmt, encode(encoder_for(fmt, state), captured.chunks, captured.status), state))
    return dict(zip(keys, decode_all(items), strict=True))


def test_scenarios_cover_what_issue_5_asks() -> None:
    names = {scenario.name for scenario in SCENARIOS}
    assert len(names) >= 10
    assert {"error_mid_run", "cancelled_mid_text", "many_deltas", "unicode", "parallel_tools"} <= names


CASES = [(backend, scenario.name, fmt) for scenario in SCENARIOS for backend in scenario.backends for fmt in FORMATS]


@pytest.mark.parametrize(("backend", "scenario", "fmt"), CASES, ids=["-".join(case) for case in CASES])
def test_client_shows_what_the_run_sent(
    backend: str,
    scenario: str,
    fmt: str,
    runs: dict[tuple[str, str], Captured],
    decoded: dict[tuple[str, str, str], Decoded],
) -> None:
    captured = runs[backend, scenario]
    shown: dict[str, Any] = client_view(fmt, decoded[backend, scenario, fmt])
    assert shown == expected_view(fmt, captured.message, captured.status)


def test_keepalives_are_ignored_by_every_client(runs: dict[tuple[str, str], Captured]) -> None:
    """Each format's idle keepalive, between every two frames, changes nothing the client shows."""
    captured = runs["asyncio", "parallel_tools"]
    items = []
    for fmt in FORMATS:
        encoder = encoder_for(fmt)
        keepalive = encoder.get_keepalive_token()
        assert keepalive is not None, fmt
        pieces = encode(encoder, captured.chunks, captured.status)
        items.append((fmt, [piece for body_piece in pieces for piece in (keepalive.encode(), body_piece)], None))
    for (fmt, _, _), decoded in zip(items, decode_all(items), strict=True):
        assert client_view(fmt, decoded) == expected_view(fmt, captured.message, captured.status), fmt
