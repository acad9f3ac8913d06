"""The onnx package's backend node tests through from_onnx + tecomp.graph.build + run.

By default a representative subset runs (every converted op type at least once, plus one listed
expected failure of each kind); ``-m slow`` runs every selected case. A case on
``conformance.EXPECTED_FAILURES`` must end exactly as listed, so one that starts passing fails
here with "remove it from the list". ``python -m tecomp.frontend.conformance`` prints the table
of passes per op type.
"""

from __future__ import annotations

import pytest

from tecomp.frontend import conformance
from tecomp.frontend.registry import CONVERTERS

SELECTED = conformance.selected_cases()
QUICK = conformance.representative(SELECTED)
QUICK_NAMES = {c.name for c in QUICK}


def _check(case) -> None:
    outcome = conformance.run_case(case)
    listed = conformance.EXPECTED_FAILURES.get(case.name)
    if listed is None:
        assert outcome.kind == "pass", f"{case.name}: {outcome.kind}: {outcome.message}"
    elif outcome.kind == "pass":
        pytest.fail(f"{case.name} passes now: remove it from conformance.EXPECTED_FAILURES")
    else:
        assert outcome.kind == listed[0], (f"{case.name} is listed as {listed[0]} ({listed[1]}), but it ended "
                                           f"{outcome.kind}: {outcome.message}")


@pytest.mark.parametrize("case", QUICK, ids=lambda c: c.name)
def test_node_case(case):
    _check(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in SELECTED if c.name not in QUICK_NAMES], ids=lambda c: c.name)
def test_node_case_full(case):
    _check(case)


def test_expected_failures_name_selected_cases_with_reasons():
    selected = {c.name for c in SELECTED}
    assert sorted(set(conformance.EXPECTED_FAILURES) - selected) == []
    for name, (kind, reason) in conformance.EXPECTED_FAILURES.items():
        assert kind in ("rejected", "fail", "error") and len(reason) > 10, name
    assert set(conformance.TOLERANCES) <= selected


def test_subset_covers_every_converted_op_with_a_case():
    """Every converter whose op type appears in some selected case is in the quick subset."""
    in_cases = {op for c in SELECTED for op in conformance.op_types(c.model)}
    in_quick = {op for c in QUICK for op in conformance.op_types(c.model)}
    assert in_cases & set(CONVERTERS) <= in_quick
    assert len(SELECTED) > 500
