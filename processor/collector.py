"""Garbage-collector settings for long runs: what start-up loaded is never scanned again, young collections are rarer.

CPython's collector scans every tracked object in a full collection. A worker's start-up leaves a few hundred
thousand of them (faust, aiokafka, pydantic, prometheus_client), none of them garbage. The processor benchmark's
worker, folding 50,000 records, ran five full collections that cost 0.3 s, and 0.5 s with the younger ones: 4-5 %
of its CPU (timed with `gc.callbacks`). A replay's full collections cost it 0.1-0.2 s of a 0.6 s read. `gc.freeze()`
moves what exists into a generation no collection visits; reference counting still frees those objects when their
last reference goes.

Young collections run every 700 allocations (net of frees) by default. The fold keeps what it allocates (held
callbacks, recordings, records of a batch in flight), so each young collection scans survivors for nothing: at
50,000 the worker's ran 3.5 times less often, and took 3.5 times less time in all. At most that many young objects
then wait for a collection: cyclic garbage, a few MiB at worst. Settled so, the same worker's collections took
0.09 s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations (net of frees) between two young collections (CPython's default: 700).
YOUNG_THRESHOLD = 50_000
#: Young collections between two middle ones (CPython's default: 10).
MIDDLE_THRESHOLD = 20


def settle() -> None:
    """Freeze what exists and collect young objects less often, for the rest of the process (a started worker)."""
    gc.collect()  # what start-up left as garbage goes now, rather than frozen with the rest
    _tune()


@contextmanager
def settled() -> Iterator[None]:
    """Freeze what exists and collect young objects less often for the block, then undo both (a replay)."""
    thresholds = gc.get_threshold()
    _tune()  # no collection first: it would cost as much as it saves (what it would free is unfrozen after)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def _tune() -> None:
    """Freeze every tracked object and raise the young and middle thresholds."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, gc.get_threshold()[2])
