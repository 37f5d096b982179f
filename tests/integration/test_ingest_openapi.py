"""Schemathesis against a live ingest on the real broker: generated requests, signed or not, get documented answers."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

import hypothesis
import orjson
import pytest
import requests
import schemathesis
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error

from devenv.kafka import EmbeddedKafka
from devenv.topics import TopicSpec, ensure_topics
from ingest.openapi import document
from ingest.settings import IngestSettings
from ingest.signature import sign
from tests.ingest_support import AGORA_SECRET, ANYRTC_SECRET
from tests.integration.ingest_process import LiveIngest, records_on, running_ingest

pytestmark = pytest.mark.kafka

#: Per operation; 10 operations, so a few hundred requests: well under a minute on a loaded 2-core machine.
MAX_EXAMPLES = 50
#: How each provider's callbacks are signed by NCS (the header the ingest consults first).
SIGNERS = {"agora": ("Agora-Signature-V2", AGORA_SECRET), "anyrtc": ("Ar-Signature", ANYRTC_SECRET)}
#: (method, path, status) of every answer, to show afterwards that the paths that matter were exercised.
ANSWERS: Counter[tuple[str, str, int]] = Counter()


class SignedBody(requests.auth.AuthBase):
    """Sign the body exactly as it goes on the wire, as NCS does, with the test secret of the URL's provider."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        provider = urlsplit(request.url or "").path.rsplit("/", 1)[-1]
        if provider in SIGNERS:
            header, secret = SIGNERS[provider]
            body = request.body or b""
            request.headers[header] = sign(body.encode() if isinstance(body, str) else body, secret)
        return request


#: The live ingest's settings (INGEST_* without the prefix), and the document it serves with them.
SETTINGS = {"agora_secrets": AGORA_SECRET.decode(), "anyrtc_secrets": ANYRTC_SECRET.decode()}
DOCUMENT = document(IngestSettings.model_validate(SETTINGS))
# Built from the document at import (pytest parametrizes by operation then); the last test checks that the live
# ingest serves this very document.
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.auth.set_from_requests(SignedBody()).apply_to(method="POST")


@pytest.fixture(scope="module")
def live_ingest(kafka: EmbeddedKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIngest]:
    topic = f"openapi-fuzz-{uuid.uuid4().hex}"
    asyncio.run(ensure_topics(kafka.bootstrap_servers, [TopicSpec(topic, partitions=1)]))
    log = tmp_path_factory.mktemp("ingest") / "ingest.log"
    with running_ingest(kafka.bootstrap_servers, topic, log=log, **SETTINGS) as live:
        yield live


def no_server_error_but_the_documented_503(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """5xx is a failure, except a 503 (broker unavailable), which the document promises with Retry-After."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"server error {response.status_code}: {response.text[:200]}")
    return None


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None)
def test_generated_requests_get_documented_answers_and_never_a_server_error(
    case: Case, live_ingest: LiveIngest
) -> None:
    response = case.call_and_validate(
        base_url=live_ingest.base_url,
        timeout=15,
        excluded_checks=[not_a_server_error],
        additional_checks=[no_server_error_but_the_documented_503],
    )
    ANSWERS[(str(response.request.method), case.operation.path, response.status_code)] += 1


def outcomes(live: LiveIngest) -> dict[str, float]:
    """Return the ingest's own count of requests by outcome (over both providers)."""
    text = requests.get(f"{live.base_url}/metrics", timeout=10).text
    counts: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "ingest_requests_total":
                counts[sample.labels["outcome"]] += sample.value
            if sample.name == "ingest_signature_failures_total":
                counts[f"signature_{sample.labels['reason']}"] += sample.value
    return counts


async def test_the_fuzzing_reached_durable_200s_and_refusals_and_published_only_keyable_bodies(
    live_ingest: LiveIngest,
) -> None:
    if not ANSWERS:
        pytest.skip("run with the generated requests above (it checks what they left behind)")
    seen = await asyncio.to_thread(outcomes, live_ingest)
    # Signed and published, another product's notice, signed but not keyable, unsigned, wrongly signed
    # (schemathesis' own probes of every 200), and other methods than the documented ones.
    reached = ("published", "other_product", "bad_request", "signature_missing", "signature_mismatch")
    for outcome in (*reached, "method_not_allowed"):
        assert seen[outcome] > 0, (outcome, seen)
    records = await records_on(live_ingest.bootstrap_servers, live_ingest.topic)
    assert len(records) == seen["published"]
    print(f"{sum(ANSWERS.values())} generated requests: {sorted(ANSWERS.items())}; ingest outcomes: {seen}")
    for record in records:
        body = orjson.loads(record.value)
        assert float(body["eventType"]).is_integer()  # 40 or 40.0: both are JSON Schema integers
        assert record.key == body["payload"]["sid"].encode()
        assert dict(record.headers)["signature"] in {b"Agora-Signature-V2", b"Ar-Signature"}
    assert "Traceback" not in live_ingest.log.read_text()  # nothing unhandled, even where the answer was fine
    served = await asyncio.to_thread(requests.get, f"{live_ingest.base_url}/openapi.json", timeout=10)
    assert served.json() == orjson.loads(orjson.dumps(DOCUMENT))
