"""What happens to one callback: verify, validate, publish the raw bytes, decide the answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from prometheus_client import Counter

from ingest.callback import Callback, InvalidCallback, OtherProduct, inspect
from ingest.histograms import HistogramChild
from ingest.logs import Throttle
from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher, PublishFailed, RawRecord
from ingest.signature import Scheme, has_signature, verify

log = logging.getLogger(__name__)

#: The `signature` header of records accepted without verification (INGEST_ALLOW_UNSIGNED, local only).
UNSIGNED = "unsigned"
#: At most one "signature refused" line per provider and reason this often (ingest_signature_failures_total
#: counts every refusal).
REFUSAL_LOG_INTERVAL_MS = 1000
#: At most one "other product's notice answered" line per provider and product this often: a project's RTC channel
#: events arrive by the thousand (ingest_requests_total{outcome="other_product"} counts every one).
OTHER_PRODUCT_LOG_INTERVAL_MS = 1000
#: Products with a log line of their own (productId 1 RTC channel events, 17 Conversational AI, 20 Real-Time STT,
#: per Agora's NCS pages). Any other shares the line "other": the throttle keeps a key per product, and a signed
#: body may carry any integer.
LOGGED_PRODUCTS = frozenset({1, 17, 20})


class Outcome(StrEnum):
    """How a request ended: the `outcome` label of ingest_requests_total."""

    PUBLISHED = "published"
    TEST_EVENT = "test_event"
    PROBE = "probe"
    OTHER_PRODUCT = "other_product"
    BAD_SIGNATURE = "bad_signature"
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    BODY_TIMEOUT = "body_timeout"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to give: its HTTP status, and the reason for a refusal."""

    outcome: Outcome
    status: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Provider:
    """One NCS sender (Agora, anyRTC): its signature schemes and secrets."""

    name: str
    schemes: tuple[Scheme, ...]
    secrets: tuple[bytes, ...]
    allow_unsigned: bool = False


#: The outcomes answered 200; every other one is a refusal.
ANSWERED_OK = frozenset({Outcome.PUBLISHED, Outcome.TEST_EVENT, Outcome.PROBE, Outcome.OTHER_PRODUCT})

#: The answers that carry no reason of their own are made once.
PUBLISHED = Result(Outcome.PUBLISHED, 200)
OTHER_PRODUCT = Result(Outcome.OTHER_PRODUCT, 200)
UNAVAILABLE = Result(Outcome.UNAVAILABLE, 503, "the callback could not be stored; retry later")


@dataclass(frozen=True, slots=True)
class _Bound:
    """One provider's labelled metric children: looked up once, not by label values on every request."""

    body_bytes: HistogramChild
    publish_seconds: HistogramChild
    provider_header: bytes


class Ingest:
    """Turn callbacks into durable raw records; 200 only once the publisher acknowledged the write."""

    def __init__(
        self,
        *,
        providers: Mapping[str, Provider],
        publisher: Publisher,
        metrics: IngestMetrics,
        instance_id: str,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.providers = providers
        self.publisher = publisher
        self.metrics = metrics
        self.instance_id = instance_id
        self.clock_ms = clock_ms
        #: Requests being handled; the in-flight gauge reads it when scraped (no lock taken per request).
        self.in_flight = 0
        metrics.in_flight.set_function(lambda: self.in_flight)
        # Children are bound when first used, as `.labels()` would bind them: /metrics shows the same series.
        self._bound: dict[str, _Bound] = {}
        self._requests: dict[tuple[str, Outcome], Counter] = {}
        self._instance_header = instance_id.encode()
        self._refusals_logged = Throttle(REFUSAL_LOG_INTERVAL_MS)
        self._other_products_logged = Throttle(OTHER_PRODUCT_LOG_INTERVAL_MS)

    async def receive(self, provider: Provider, raw: bytes, headers: Mapping[str, str], *, received_ms: int) -> Result:
        """Handle one POSTed body and return the answer (outcomes are counted here)."""
        bound = self._bound.get(provider.name) or self._bind(provider.name)
        bound.body_bytes.observe(len(raw))
        signature = self._verify(provider, raw, headers)
        if signature is None:
            return self.count(provider.name, Result(Outcome.BAD_SIGNATURE, 401, "invalid or missing signature"))
        try:
            callback = inspect(raw)
        except InvalidCallback as exc:
            log.info("callback refused", extra={"provider": provider.name, "reason": str(exc)})
            return self.count(provider.name, Result(Outcome.BAD_REQUEST, 400, str(exc)))
        if isinstance(callback, OtherProduct):
            # Another product's notice to the shared address: a refusal would only make NCS send it again.
            self._log_other_product(provider, callback)
            return self.count(provider.name, OTHER_PRODUCT)
        if callback.is_test:
            # The console's address check: answer it, but never let it become a recording.
            log.info("console test event answered", extra={"provider": provider.name})
            return self.count(provider.name, Result(Outcome.TEST_EVENT, 200))
        record = self._record(bound, raw, callback, signature=signature, received_ms=received_ms)
        # Published here rather than in a coroutine of its own: one frame fewer to create and resume a request.
        began = time.perf_counter()
        try:
            await self.publisher.publish(record)
        except PublishFailed as exc:
            log.error("publish failed: answering 503", extra={"provider": provider.name, "error": str(exc)})
            return self.count(provider.name, UNAVAILABLE)
        finally:
            bound.publish_seconds.observe(time.perf_counter() - began)
        return self.count(provider.name, PUBLISHED)

    def count(self, provider: str, result: Result) -> Result:
        """Count the request's outcome and return the result unchanged."""
        counter = self._requests.get((provider, result.outcome))
        if counter is None:
            counter = self._requests[provider, result.outcome] = self.metrics.requests.labels(
                provider, result.outcome.value
            )
        counter.inc()
        return result

    def _bind(self, provider: str) -> _Bound:
        bound = _Bound(
            body_bytes=self.metrics.body_bytes.labels(provider),
            publish_seconds=self.metrics.publish_seconds.labels(provider),
            provider_header=provider.encode(),
        )
        self._bound[provider] = bound
        return bound

    def _verify(self, provider: Provider, raw: bytes, headers: Mapping[str, str]) -> str | None:
        if not provider.secrets and provider.allow_unsigned:
            return UNSIGNED
        match = verify(raw, headers, provider.secrets, schemes=provider.schemes)
        if match is not None:
            return match.header
        reason = "mismatch" if has_signature(headers, schemes=provider.schemes) else "missing"
        self.metrics.signature_failures.labels(provider.name, reason).inc()
        held_back = self._refusals_logged.allow((provider.name, reason), now_ms=self.clock_ms())
        if held_back is not None:
            # Never the body: it is unauthenticated input.
            extra = {"provider": provider.name, "reason": reason, "bytes": len(raw), "held_back": held_back}
            log.warning("signature refused", extra=extra)
        return None

    def _log_other_product(self, provider: Provider, notice: OtherProduct) -> None:
        product = str(notice.product_id) if notice.product_id in LOGGED_PRODUCTS else "other"
        held_back = self._other_products_logged.allow((provider.name, product), now_ms=self.clock_ms())
        if held_back is not None:
            extra = {
                "provider": provider.name,
                "product_id": notice.product_id,
                "event_type": notice.event_type,
                "held_back": held_back,
            }
            log.info("other product's notice answered, not published", extra=extra)

    def _record(self, bound: _Bound, raw: bytes, callback: Callback, *, signature: str, received_ms: int) -> RawRecord:
        headers = [
            ("received-at-ms", b"%d" % received_ms),
            ("provider", bound.provider_header),
            ("signature", signature.encode()),
            ("ingest-instance", self._instance_header),
        ]
        if callback.notice_id is not None:
            headers.append(("notice-id", callback.notice_id.encode()))
        # The value is the body exactly as received: its signature stays verifiable downstream.
        return RawRecord(key=callback.sid.encode(), value=raw, headers=tuple(headers))
