"""The Grafana dashboard: valid against Grafana's schema, unique panel ids, a datasource everywhere, provisioned."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "recording-callbacks.json"
#: Grafana's dashboard JSON Schema, built from the @grafana/schema npm package by deploy/tools/schemas.sh.
FETCHED_SCHEMA = REPO / ".cache/tools/grafana-schema/dashboard.jsonschema.json"
#: The copy shared by the projects on this machine, if any: read where it is (never copied) when make tools has not run.
SHARED_SCHEMA = REPO.parent / "shared/schemas/grafana/dashboard.jsonschema.json"
#: Wrong panels, as the field set on an otherwise valid panel: each must make the dashboard invalid.
WRONG_PANELS = {
    "a grid position that is a word": ("gridPos", {"x": "left", "y": 0, "w": 8, "h": 8}),
    "a misspelt title field": ("titel", "Ingest"),
    "queries that are one object, not a list": ("targets", {"refId": "A", "expr": "up"}),
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and the panels nested in collapsed rows included."""
    top = dashboard["panels"]
    return top + [inner for panel in top for inner in panel.get("panels", [])]


def load_render() -> ModuleType:
    """Import deploy/grafana/render.py by path (deploy/ is not a package: the script runs by path)."""
    spec = importlib.util.spec_from_file_location("dashboard_render", GRAFANA / "render.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard_schema() -> Path:
    """Return the schema to check: GRAFANA_DASHBOARD_SCHEMA if set, else the fetched one, else the shared one."""
    override = os.environ.get("GRAFANA_DASHBOARD_SCHEMA")
    candidates = [Path(override)] if override else [FETCHED_SCHEMA, SHARED_SCHEMA]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        pytest.fail(f"Grafana's dashboard schema is not at {candidates[0]}: run make tools")
    return found


def test_the_dashboard_is_valid_against_grafanas_schema(dashboard):
    jsonschema.Draft7Validator(json.loads(dashboard_schema().read_text())).validate(dashboard)


@pytest.mark.parametrize("wrong", WRONG_PANELS.values(), ids=WRONG_PANELS.keys())
def test_the_schema_rejects_a_panel_of_the_wrong_shape(dashboard, wrong):
    validator = jsonschema.Draft7Validator(json.loads(dashboard_schema().read_text()))
    assert validator.is_valid(dashboard)
    broken = copy.deepcopy(dashboard)
    field, value = wrong
    next(panel for panel in broken["panels"] if panel["type"] != "row")[field] = value
    assert not validator.is_valid(broken)


def test_every_panel_has_a_unique_id(dashboard):
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert all(isinstance(pid, int) for pid in ids)


def test_every_panel_and_query_uses_the_prometheus_datasource_variable(dashboard):
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    queried = [panel for panel in panels(dashboard) if panel["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], panel["title"]
            assert target["expr"].strip(), panel["title"]
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_panels_do_not_overlap_on_the_grid(dashboard):
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        x, y, w, h = (panel["gridPos"][key] for key in "xywh")
        cells = {(column, line) for column in range(x, x + w) for line in range(y, y + h)}
        assert not cells & taken, panel["title"]
        taken |= cells


def test_the_provisioned_datasource_is_the_variables_default_and_the_provider_loads_files(dashboard):
    provisioning = GRAFANA / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    providers = yaml.safe_load((provisioning / "dashboards" / "recording-callbacks.yml").read_text())["providers"]
    default = next(variable for variable in dashboard["templating"]["list"] if variable["name"] == "datasource")
    assert [(source["type"], source["uid"]) for source in datasources] == [("prometheus", default["current"]["value"])]
    assert [(provider["type"], bool(provider["options"]["path"])) for provider in providers] == [("file", True)]


def test_the_rendered_panels_are_panels_of_the_dashboard(dashboard):
    render = load_render()
    chosen = render.load_panels(DASHBOARD)
    assert 6 <= len(chosen) <= 9
    assert {panel["id"] for panel in chosen} <= {panel["id"] for panel in panels(dashboard)}
    assert all(panel["type"] == "timeseries" for panel in chosen)


def test_a_legend_format_is_filled_from_the_series_labels():
    render = load_render()
    assert render.legend("exit {{exit_status}} on {{ job }}", {"exit_status": "1", "job": "p"}) == "exit 1 on p"
    assert render.legend("", {"topic": "raw"}) == '{"topic": "raw"}'
