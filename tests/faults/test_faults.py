"""The fault scenarios of tests/faults/scenarios.py, each checked by the same invariants.

``make test-faults`` runs only these; ``make test`` runs them with everything else.
"""

from __future__ import annotations

import pytest
from tests.faults.checks import check_invariants
from tests.faults.conftest import WorldFactory
from tests.faults.scenarios import SCENARIOS, Scenario

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_fault(
    scenario: Scenario, make_world: WorldFactory, request: pytest.FixtureRequest
) -> None:
    world = make_world(scenario.primary)
    outcome = scenario.act(world)
    check_invariants(world, outcome)
    request.node.fault_summary = outcome.summary
