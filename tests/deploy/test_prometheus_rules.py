"""The Prometheus rules: promtool accepts them, their tests pass and cover every alert, no recording id in sight."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "recording.rules.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
RUNBOOK = PROMETHEUS / "RUNBOOK.md"
DASHBOARD = REPO / "deploy" / "grafana" / "recording-callbacks.json"
#: A recording's ids are unbounded: one series per recording would swamp Prometheus.
RECORDING_IDS = re.compile(r"\b(sid|cname|uid)\b")
PROMTOOL_TIMEOUT_S = 60


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool (bounded); fail, never skip, when it is not installed."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run make tools")
    return subprocess.run(  # noqa: S603  # promtool from PATH, fixed arguments
        [binary, *args], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False, cwd=PROMETHEUS
    )


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def alert_tests() -> list[dict[str, Any]]:
    """Every alert_rule_test of every promtool test file."""
    return [
        case
        for path in RULE_TESTS
        for group in yaml.safe_load(path.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
    ]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    inner = [panel for row in panels for panel in row.get("panels", [])]
    return [target["expr"] for panel in panels + inner for target in panel.get("targets", [])]


def test_promtool_accepts_the_rules():
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_example_prometheus_config_loads_the_rules():
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout


def test_the_promtool_unit_tests_of_the_rules_pass():
    assert RULE_TESTS, "no promtool test files in deploy/prometheus/tests"
    tested = promtool("test", "rules", *(str(path.relative_to(PROMETHEUS)) for path in RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_is_tested_both_firing_and_silent():
    names = {rule["alert"] for rule in alerts()}
    firing = {case["alertname"] for case in alert_tests() if case.get("exp_alerts")}
    silent = {case["alertname"] for case in alert_tests() if not case.get("exp_alerts")}
    assert names, "the rules define no alert"
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_summary_a_description_and_a_runbook_section():
    anchors = {
        re.sub(r"[^a-z0-9-]", "", heading.lower())
        for heading in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.MULTILINE)
    }
    for rule in alerts():
        annotations = rule.get("annotations", {})
        assert {"summary", "description", "runbook"} <= set(annotations), rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == str(RUNBOOK.relative_to(REPO)), rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {RUNBOOK.name}"


def test_no_rule_or_dashboard_expression_groups_or_filters_by_a_recording_id():
    expressions = [rule["expr"] for rule in rules()] + dashboard_expressions()
    assert len(expressions) > len(rules())  # the dashboard's expressions were read too
    assert [expr for expr in expressions if RECORDING_IDS.search(expr)] == []
    for rule in rules():
        assert not set(rule.get("labels", {})) & {"sid", "cname", "uid"}, rule
        templates = " ".join(rule.get("annotations", {}).values())
        assert not re.search(r"\$labels\.(sid|cname|uid)\b", templates), rule


def test_the_recording_id_check_catches_a_sid_label():
    assert RECORDING_IDS.search('sum by (sid) (rate(recording_processor_callbacks_total{cname="x"}[5m]))')
    assert not RECORDING_IDS.search("sum by (status) (recording_processor_active_recordings)")
