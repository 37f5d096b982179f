"""deploy/: each Kubernetes overlay is schema-valid and agrees with the apps' settings; so does the compose file."""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from pydantic_settings import BaseSettings

from ingest.app import init_app
from ingest.settings import IngestSettings
from processor.agent import create_app
from processor.settings import ProcessorSettings
from tests.ingest_support import MemoryPublisher

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
TOOLS = REPO / ".cache" / "tools"
KUBECONFORM = TOOLS / "bin" / "kubeconform"
#: Prepared by deploy/tools/kubeconform.sh (the same Kubernetes version).
CORE_SCHEMAS = TOOLS / "k8s-schemas" / "v1.32.0-local-strict"
#: Strimzi and Prometheus Operator CRD schemas, built from registry packages by deploy/tools/schemas.sh.
CRD_SCHEMAS = TOOLS / "crd-schemas"
#: The copy shared by the projects on this machine, if any: kubeconform looks there for what CRD_SCHEMAS lacks.
SHARED_CRD_SCHEMAS = REPO.parent / "shared" / "schemas" / "crds"
#: Stands in for the NCS Secret that prod expects to exist already.
PLACEHOLDER_SECRETS = {"INGEST_AGORA_SECRETS": "placeholder-secret"}
SETTINGS: dict[str, type[BaseSettings]] = {"INGEST_": IngestSettings, "PROCESSOR_": ProcessorSettings}
Resource = dict[str, Any]


def _missing_tool(what: str) -> None:
    pytest.fail(f"{what} is missing: run make tools")


def kustomize_command() -> list[str]:
    """Return the command that renders a kustomization: deploy/tools/kustomize.sh's binary, else kubectl's."""
    local = TOOLS / "bin" / "kustomize"
    if local.exists():
        return [str(local), "build"]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        _missing_tool("kustomize (or kubectl)")
    return [str(kubectl), "kustomize"]


@functools.cache
def rendered(overlay: str) -> str:
    """Return the overlay's manifests as kustomize renders them."""
    command = [*kustomize_command(), str(K8S / "overlays" / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603  # our own tool
    assert result.returncode == 0, result.stderr
    return result.stdout


def resources(overlay: str) -> list[Resource]:
    """Return the overlay's rendered resources."""
    return [doc for doc in yaml.safe_load_all(rendered(overlay)) if doc]


def only(docs: list[Resource], kind: str, name: str | None = None) -> Resource:
    """Return the one resource of a kind (and name)."""
    found = [doc for doc in docs if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def crd_schema_dirs() -> list[Path]:
    """Return where kubeconform looks for CRD schemas, in order: the fetched ones, then the shared copy."""
    dirs = [directory for directory in (CRD_SCHEMAS, SHARED_CRD_SCHEMAS) if directory.is_dir()]
    if not dirs:
        _missing_tool(f"the CRD schema directory {CRD_SCHEMAS}")
    return dirs


def kubeconform(manifests: str) -> subprocess.CompletedProcess[str]:
    """Validate manifests strictly against the offline core schemas and the CRD schemas."""
    for tool in (KUBECONFORM, CORE_SCHEMAS / "deployment-apps-v1.json"):
        if not tool.exists():
            _missing_tool(str(tool))
    crd_locations = [
        ("-schema-location", f"{directory}/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json")
        for directory in crd_schema_dirs()
    ]
    command = [
        str(KUBECONFORM),
        "-strict",
        "-summary",
        *("-schema-location", f"{CORE_SCHEMAS}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json"),
        *(part for location in crd_locations for part in location),
        "-",
    ]
    return subprocess.run(command, input=manifests, capture_output=True, text=True, check=False)  # noqa: S603


def container_env(docs: list[Resource], workload: Resource) -> dict[str, str]:
    """Return the environment Kubernetes gives the workload's first container: envFrom, then env, $(VAR) expanded."""
    container = workload["spec"]["template"]["spec"]["containers"][0]
    namespace = workload["metadata"]["namespace"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config_map = find(docs, "ConfigMap", source["configMapRef"]["name"], namespace)
            assert config_map is not None, source
            env.update(config_map["data"])
        else:  # a Secret the overlay may leave to the cluster (prod)
            secret = find(docs, "Secret", source["secretRef"]["name"], namespace)
            data = secret["data"] if secret else {}
            env.update({key: base64.b64decode(value).decode() for key, value in data.items()} or PLACEHOLDER_SECRETS)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda ref: env[ref[1]], item["value"])
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, item
            env[item["name"]] = f"{workload['metadata']['name']}-0"
    return env


def find(docs: list[Resource], kind: str, name: str, namespace: str) -> Resource | None:
    """Return the resource of that kind, name and namespace, if the overlay has it."""
    matches = (doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name)
    return next((doc for doc in matches if doc["metadata"]["namespace"] == namespace), None)


def composition_helpers(container: Resource) -> set[str]:
    """Return the env names only used to compose other values through $(NAME) (the downward API's pod name)."""
    values = " ".join(item.get("value", "") for item in container.get("env", []))
    return set(re.findall(r"\$\((\w+)\)", values))


def load_settings(env: Mapping[str, str], prefix: str) -> Any:
    """Build the prefix's settings class from exactly this environment, as the process would."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.upper().startswith(prefix)]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        return SETTINGS[prefix]()


def unknown_settings(env: Mapping[str, str], ignore: Collection[str] = ()) -> list[str]:
    """Return the names that no settings class reads: a typo is silently ignored by extra="ignore"."""
    unknown = []
    for name in set(env) - set(ignore):
        prefix = next((prefix for prefix in SETTINGS if name.startswith(prefix)), None)
        if prefix is None or name.removeprefix(prefix).lower() not in SETTINGS[prefix].model_fields:
            unknown.append(name)
    return sorted(unknown)


def workloads(docs: list[Resource]) -> Iterator[tuple[Resource, str]]:
    """Yield the ingest Deployment and the processor StatefulSet with their settings prefix."""
    yield only(docs, "Deployment", "recording-ingest"), "INGEST_"
    yield only(docs, "StatefulSet", "recording-processor"), "PROCESSOR_"


def settings_of(docs: list[Resource]) -> tuple[IngestSettings, ProcessorSettings]:
    """Return the settings the overlay's ingest and processor pods start with."""
    (ingest, _), (processor, _) = workloads(docs)
    return load_settings(container_env(docs, ingest), "INGEST_"), load_settings(
        container_env(docs, processor), "PROCESSOR_"
    )


def topics(docs: list[Resource]) -> dict[str, Resource]:
    """Return the KafkaTopics by Kafka topic name (spec.topicName, else the resource name)."""
    return {doc["spec"].get("topicName", doc["metadata"]["name"]): doc for doc in docs if doc["kind"] == "KafkaTopic"}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(overlay: str) -> list[Resource]:
    return resources(overlay)


def test_overlay_passes_kubeconform_strict_against_core_and_crd_schemas(overlay: str, docs: list[Resource]) -> None:
    result = kubeconform(rendered(overlay))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Valid: {len(docs)}, Invalid: 0, Errors: 0, Skipped: 0" in result.stdout


BROKEN = {
    "misspelt probe field and a string replica count": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: broken}\nspec:\n  replicas: two\n"
        "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n"
        "      containers: [{name: c, image: i, livenessProbe: {httpGet: {paht: /healthz, port: 80}}}]\n",
        "additional properties 'paht' not allowed",
    ),
    "KafkaTopic without partitions but with an unknown field": (
        "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\nmetadata: {name: t}\n"
        "spec: {partitions: 0, replica: 3}\n",
        "additional properties 'replica' not allowed",
    ),
    "kind without a schema": (
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        "could not find schema",
    ),
}


@pytest.mark.parametrize("manifest", BROKEN.values(), ids=BROKEN.keys())
def test_kubeconform_check_rejects_broken_manifests(manifest: tuple[str, str]) -> None:
    text, reason = manifest
    result = kubeconform(text)
    assert result.returncode != 0
    assert reason in result.stdout


WRONG_CUSTOM_RESOURCES = {
    "KafkaTopic with an unknown field": (
        "apiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\nmetadata: {name: t}\n"
        "spec: {partitions: 3, replica: 3}\n",
        "additional properties 'replica' not allowed",
    ),
    "ServiceMonitor whose endpoints are one object, not a list": (
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\n"
        "spec: {selector: {matchLabels: {a: b}}, endpoints: {port: http}}\n",
        "at '/spec/endpoints': got object, want array",
    ),
    "PrometheusRule whose rule has a misspelt field": (
        "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\n"
        "spec: {groups: [{name: g, rules: [{record: a, expresion: b}]}]}\n",
        "missing property 'expr'",
    ),
}


@pytest.mark.parametrize("manifest", WRONG_CUSTOM_RESOURCES.values(), ids=WRONG_CUSTOM_RESOURCES.keys())
def test_crd_schemas_reject_custom_resources_of_the_wrong_shape(manifest: tuple[str, str]) -> None:
    text, reason = manifest
    result = kubeconform(text)
    assert result.returncode != 0
    assert reason in result.stdout


def test_every_env_var_is_a_setting_and_the_pods_settings_load(docs: list[Resource]) -> None:
    for workload, prefix in workloads(docs):
        env = container_env(docs, workload)
        helpers = composition_helpers(workload["spec"]["template"]["spec"]["containers"][0])
        assert unknown_settings(env, helpers) == [], workload["metadata"]["name"]
        load_settings({name: value for name, value in env.items() if name not in helpers}, prefix)


def test_processor_replicas_do_not_exceed_the_raw_topic_partitions(docs: list[Resource]) -> None:
    _, processor = settings_of(docs)
    replicas = only(docs, "StatefulSet", "recording-processor")["spec"]["replicas"]
    assert replicas <= topics(docs)[processor.raw_topic]["spec"]["partitions"]


def test_kafka_topics_are_the_processor_plans_plus_the_topics_faust_makes(docs: list[Resource]) -> None:
    _, processor = settings_of(docs)
    app = create_app(processor)
    expected = {plan.name: plan.partitions for plan in processor.topic_specs()}
    expected.update({table.changelog_topic.get_topic_name(): table.partitions for table in app.tables.values()})
    # Faust keeps the leader topic's name private; one partition (faust/assignor/leader_assignor.py).
    expected[app._leader_assignor._leader_topic_name] = 1  # type: ignore[attr-defined]
    declared = topics(docs)
    assert {name: topic["spec"]["partitions"] for name, topic in declared.items()} == expected
    for plan in processor.topic_specs():
        config = {key: str(value) for key, value in declared[plan.name]["spec"]["config"].items()}
        assert config.items() >= dict(plan.configs).items(), plan.name


def test_state_and_changelog_topics_are_compacted_and_the_raw_topic_never(docs: list[Resource]) -> None:
    _, processor = settings_of(docs)
    policy = {name: topic["spec"]["config"]["cleanup.policy"] for name, topic in topics(docs).items()}
    assert policy[processor.state_topic] == "compact"
    assert policy[f"{processor.app_id}-recordings-changelog"] == "compact"
    # Keyed by sid, compaction would keep one callback per recording: the replayable log would be gone.
    assert policy[processor.raw_topic] == "delete"


def test_min_insync_replicas_leave_room_for_acks_all_writes(docs: list[Resource]) -> None:
    for name, topic in topics(docs).items():
        assert int(topic["spec"]["config"]["min.insync.replicas"]) <= topic["spec"]["replicas"], name


def test_prod_topics_have_three_replicas_two_of_them_in_sync() -> None:
    for name, topic in topics(resources("prod")).items():
        assert (topic["spec"]["replicas"], int(topic["spec"]["config"]["min.insync.replicas"])) == (3, 2), name


def probe_paths(container: Resource, port_name: str) -> list[str]:
    """Return the HTTP probe paths of a container, checking each probes the named port."""
    probes = [container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in container]
    assert all(probe["httpGet"]["port"] == port_name for probe in probes)
    return [probe["httpGet"]["path"] for probe in probes]


def port_named(container: Resource, name: str) -> int:
    """Return the container port of that name, failing if the container has none."""
    ports = {port["name"]: int(port["containerPort"]) for port in container["ports"]}
    assert name in ports, f"container {container['name']} has no port named {name}"
    return ports[name]


async def test_ingest_probes_ask_paths_it_serves_on_its_configured_port(docs: list[Resource]) -> None:
    ingest, _ = settings_of(docs)
    container = only(docs, "Deployment", "recording-ingest")["spec"]["template"]["spec"]["containers"][0]
    assert port_named(container, "http") == ingest.port
    paths = probe_paths(container, "http")
    assert {"/healthz", "/readyz"} <= set(paths)
    async with TestClient(TestServer(init_app(ingest, publisher=MemoryPublisher()))) as client:
        for path in [*paths, "/metrics"]:
            assert (await client.get(path)).status == 200, path


async def test_processor_probes_ask_paths_it_serves_on_its_configured_port(docs: list[Resource]) -> None:
    _, processor = settings_of(docs)
    container = only(docs, "StatefulSet", "recording-processor")["spec"]["template"]["spec"]["containers"][0]
    assert port_named(container, "web") == processor.web_port
    app = create_app(processor)
    app.web.init_server()
    web_app = app.web.web_app  # type: ignore[attr-defined]  # the aiohttp driver's own Application
    readiness = container["readinessProbe"]["httpGet"]["path"]
    async with TestClient(TestServer(web_app)) as client:
        for path in [*probe_paths(container, "web"), "/metrics"]:
            # Not started, the worker has no partitions: its readiness path says 503, the others 200.
            assert (await client.get(path)).status == (503 if path == readiness else 200), path


def test_processor_web_host_is_its_dns_name_under_the_headless_service(docs: list[Resource]) -> None:
    statefulset = only(docs, "StatefulSet", "recording-processor")
    _, processor = settings_of(docs)
    service = only(docs, "Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert processor.web_host == f"{statefulset['metadata']['name']}-0.{service['metadata']['name']}"


def test_each_worker_is_a_static_member_named_after_its_pod_with_a_web_url_that_survives_restarts(
    docs: list[Resource],
) -> None:
    statefulset = only(docs, "StatefulSet", "recording-processor")
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    _, processor = settings_of(docs)
    pod = f"{statefulset['metadata']['name']}-0"
    assert processor.group_instance_id == pod
    # faust refuses a static member whose URL changed: both parts come from the pod's name and the manifest.
    assert processor.web_host.startswith(f"{pod}.")
    assert port_named(container, "web") == processor.web_port != 0
    # A restarted member is ready within seconds: the probe must notice it (and a recovering one) as quickly.
    assert container["readinessProbe"]["periodSeconds"] <= 2
    assert processor.session_timeout_s <= 30


def test_ingest_and_processor_share_the_raw_topic_and_the_cluster(docs: list[Resource]) -> None:
    ingest, processor = settings_of(docs)
    assert (ingest.raw_topic, ingest.bootstrap_servers) == (processor.raw_topic, processor.bootstrap_servers)


def monitored_service(docs: list[Resource], monitor: Resource) -> Resource:
    """Return the one Service a ServiceMonitor selects (in its own namespace)."""
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    services = [
        doc
        for doc in docs
        if doc["kind"] == "Service"
        and doc["metadata"]["namespace"] == monitor["metadata"]["namespace"]
        and doc["metadata"]["labels"].items() >= wanted
    ]
    assert len(services) == 1, monitor["metadata"]["name"]
    return services[0]


def test_service_monitors_select_one_service_and_its_named_port(docs: list[Resource]) -> None:
    monitors = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    assert {monitor["metadata"]["name"] for monitor in monitors} == {"recording-ingest", "recording-processor"}
    for monitor in monitors:
        service = monitored_service(docs, monitor)
        [workload] = [
            w
            for w, _ in workloads(docs)
            if w["spec"]["template"]["metadata"]["labels"].items() >= service["spec"]["selector"].items()
        ]
        container = workload["spec"]["template"]["spec"]["containers"][0]
        for endpoint in monitor["spec"]["endpoints"]:
            port = next(port for port in service["spec"]["ports"] if port["name"] == endpoint["port"])
            port_named(container, port["targetPort"])
            assert endpoint["path"] == "/metrics"


def test_service_monitors_name_the_scrape_jobs_as_the_alert_rules_expect(docs: list[Resource]) -> None:
    # Without spec.jobLabel, Prometheus Operator names the job after the Service; the rules in deploy/prometheus
    # are written for the jobs of its example scrape configuration.
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    monitors = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    assert all("jobLabel" not in monitor["spec"] for monitor in monitors)
    jobs = {monitored_service(docs, monitor)["metadata"]["name"] for monitor in monitors}
    assert jobs == {job["job_name"] for job in scrape["scrape_configs"]}


def test_selectors_hold_only_the_immutable_name_and_instance_labels(docs: list[Resource]) -> None:
    stable = {"app.kubernetes.io/name", "app.kubernetes.io/instance"}
    for workload, _ in workloads(docs):
        assert set(workload["spec"]["selector"]["matchLabels"]) == stable
    for doc in docs:
        if doc["kind"] in {"Service", "PodDisruptionBudget", "NetworkPolicy"}:
            selector = doc["spec"].get("selector") or doc["spec"].get("podSelector")
            assert set(selector.get("matchLabels", selector)) == stable, doc["metadata"]["name"]


def label_keys_and_values(node: Any) -> Iterator[str]:
    """Yield every label key and value and every relabelled target anywhere in a resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"labels", "matchLabels"} and isinstance(value, dict):
                yield from (part for pair in value.items() for part in pair)
            elif key in {"targetLabel", "sourceLabels"}:
                yield from [value] if isinstance(value, str) else value
            else:
                yield from label_keys_and_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from label_keys_and_values(item)


def test_no_label_names_a_recording(docs: list[Resource]) -> None:
    # One series or selector per recording id would be unbounded (README: bounded labels, never sid).
    words = {part for text in label_keys_and_values(docs) for part in re.split(r"[^a-z]+", text.lower())}
    assert not words & {"sid", "sids", "cname", "recording_id", "recordingid"}


def test_ingest_grace_period_covers_the_pre_stop_pause_and_the_drain(docs: list[Resource]) -> None:
    ingest, _ = settings_of(docs)
    pod = only(docs, "Deployment", "recording-ingest")["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + ingest.drain_timeout_s


def test_autoscaler_owns_the_ingest_replicas_and_scales_on_requested_cpu(docs: list[Resource]) -> None:
    deployment = only(docs, "Deployment", "recording-ingest")
    target = only(docs, "HorizontalPodAutoscaler", "recording-ingest")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]
    assert "cpu" in deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]


def test_network_policies_open_the_pods_own_ports_and_reach_kafka_on_the_bootstrap_port(docs: list[Resource]) -> None:
    ingest, _ = settings_of(docs)
    kafka_port = int(ingest.bootstrap_servers.rsplit(":", 1)[1])
    for workload, _ in workloads(docs):
        policy = only(docs, "NetworkPolicy", workload["metadata"]["name"])
        assert policy["spec"]["podSelector"]["matchLabels"] == workload["spec"]["selector"]["matchLabels"]
        container = workload["spec"]["template"]["spec"]["containers"][0]
        for rule in policy["spec"]["ingress"]:
            for port in rule["ports"]:
                port_named(container, port["port"])
        egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
        assert kafka_port in egress_ports


def test_only_dev_carries_an_example_secret_and_it_holds_placeholders() -> None:
    assert not [doc for doc in resources("prod") if doc["kind"] == "Secret"]
    secret = only(resources("dev"), "Secret")
    values = [base64.b64decode(value).decode() for value in secret["data"].values()]
    assert values
    assert all(value.startswith("placeholder") for value in values)
    assert unknown_settings(secret["data"]) == []


COMPOSE = REPO / "deploy" / "docker-compose.yml"


def compose_env(service: str) -> dict[str, str]:
    """Return a compose service's environment with ${VAR:-default} taken at its default (an empty shell)."""
    env = yaml.safe_load(COMPOSE.read_text())["services"][service]["environment"]
    return {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value)) for name, value in env.items()}


def test_compose_services_set_only_real_settings_and_they_load() -> None:
    for service, prefix in (("ingest", "INGEST_"), ("processor", "PROCESSOR_")):
        env = compose_env(service)
        assert unknown_settings(env) == [], service
        load_settings(env, prefix)


def test_compose_creates_the_topics_the_processor_plans_on_the_advertised_broker() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    processor = load_settings(compose_env("processor"), "PROCESSOR_")
    script = compose["services"]["topics"]["command"][0]
    partitions = re.search(r"--partitions (\d+)", script)
    assert partitions is not None, script
    created = {
        match[1]: dict(re.findall(r"--config (\S+)=(\S+)", match[2]))
        for match in re.finditer(r"^create (\S+)(.*)$", script, re.M)
    }
    assert {plan.name for plan in processor.topic_specs()} == set(created)
    assert int(partitions[1]) == processor.partitions
    for plan in processor.topic_specs():
        assert created[plan.name].items() >= dict(plan.configs).items(), plan.name
    advertised = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised == f"PLAINTEXT://{processor.bootstrap_servers}"
    assert load_settings(compose_env("ingest"), "INGEST_").bootstrap_servers == processor.bootstrap_servers
