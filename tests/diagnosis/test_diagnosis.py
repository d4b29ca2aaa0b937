"""konbu.diagnosis itself: the registry, the order of findings, diagnosis.json and the report's
Diagnosis section (the checks have their own test files)."""

import json

import pytest

import konbu
from konbu.diagnosis import NOTE, WRONG, diagnose, list_checks
from konbu.errors import UnknownNameError


@pytest.fixture(scope="module")
def zeros(train):
    return train("zeros", model="mlp", dataset="digits", init="zeros", epochs=2)


def test_every_check_is_registered_once_in_order(healthy):
    checks = list_checks()
    assert len(checks) == len(set(checks)) and checks[0] == "overfitting" and checks[-1] == "tutorial"
    with pytest.raises(UnknownNameError, match="symmetry"):
        diagnose(healthy, checks=["no-such-check"])
    assert diagnose(healthy.path, checks=["symmetry"]) == []     # a run directory works as well as a Run


def test_findings_come_most_important_first_and_reach_the_report(zeros):
    findings = konbu.diagnose(zeros)
    assert findings and [f.severity for f in findings] == sorted((f.severity for f in findings), reverse=True)
    assert findings[0].severity == WRONG and "symmetry" in [f.id for f in findings]
    stored = json.loads((zeros.path / "diagnosis.json").read_text())     # written at the end of fit
    assert stored["checks"] == list_checks() and "symmetry" in [f["id"] for f in stored["findings"]]
    page = (zeros.path / "report.html").read_text()
    assert page.index('id="diagnosis"') < page.index('id="summary"') and 'id="finding-symmetry"' in page


def test_a_healthy_run_has_nothing_worse_than_a_note(healthy):
    assert all(finding.severity <= NOTE for finding in konbu.diagnose(healthy))
    stored = json.loads((healthy.path / "diagnosis.json").read_text())
    assert all(f["severity"] <= NOTE for f in stored["findings"])
