"""`konbu diagnose` through the CLI runner: the printed findings, --json, and a bad run directory."""

import json

import konbu
from konbu.cli.testing import invoke as konbu_cli


def test_diagnose_prints_findings_and_json(tmp_path):
    run = konbu.fit(model="mlp", dataset="digits", init="zeros", epochs=2, threads=2, quiet=True,
                    out=str(tmp_path / "zeros"))
    result = konbu_cli("diagnose", run.path)
    assert result.exit_code == 0, result.output
    assert "(symmetry)" in result.output and "next: konbu train" in result.output and "--init" in result.output
    result = konbu_cli("diagnose", run.path, "--json")
    findings = json.loads(result.output)
    assert result.exit_code == 0 and "symmetry" in [f["id"] for f in findings]
    assert {"id", "severity", "title", "evidence", "next", "data", "figure"} <= set(findings[0])
    result = konbu_cli("diagnose", tmp_path / "missing")
    assert result.exit_code == 2 and "not found" in result.output and "Traceback" not in result.output
