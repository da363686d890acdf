"""A minimal faust-streaming runtime for the metrics core (run by ``bench_metrics.py
--faust`` as ``python faust_metrics_agent.py worker``; ADR 0007).

The same work as ``MetricsService`` per record: ``decode_event`` (the contract), the
core ``MetricsProcessor.handle`` on one ``PartitionState`` per source partition, and
every closed window published as a ``MetricWindowClosed`` JSON event. Records are taken
in batches (``stream.take_events``), state snapshots go once a second to an in-memory
faust table with the JSON serializer (a changelog topic; never pickle). Once
``BENCH_TOTAL`` events are handled it writes its figures as JSON to ``BENCH_OUT`` (faust
redirects stdout into its log) and exits.

Environment: ``BENCH_BROKER``, ``BENCH_PREDICTIONS``, ``BENCH_LABELS``,
``BENCH_WINDOWS`` (output topic), ``BENCH_TOTAL``, ``BENCH_APP`` (application id),
``BENCH_OUT``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import faust

from modelguard.contracts import LabelObserved, PredictionLogged, decode_event, encode_event
from modelguard.core.metrics import MetricsProcessor, PartitionState, to_event

BROKER = os.environ["BENCH_BROKER"]
PREDICTIONS = os.environ["BENCH_PREDICTIONS"]
LABELS = os.environ["BENCH_LABELS"]
WINDOWS = os.environ["BENCH_WINDOWS"]
TOTAL = int(os.environ["BENCH_TOTAL"])
OUT = os.environ["BENCH_OUT"]
BATCH = 2000
CHECKPOINT_S = 1.0

app = faust.App(
    os.environ["BENCH_APP"],
    broker=f"kafka://{BROKER}",
    store="memory://",
    key_serializer="raw",
    value_serializer="raw",
    web_enabled=False,
    topic_partitions=3,
    consumer_auto_offset_reset="earliest",
    producer_compression_type="lz4",
)
source = app.topic(PREDICTIONS, LABELS, key_type=bytes, value_type=bytes)
windows = app.topic(WINDOWS, key_type=bytes, value_type=bytes)
snapshots = app.Table(
    "metrics-state",
    partitions=3,
    schema=faust.Schema(key_serializer="json", value_serializer="json"),
    use_partitioner=True,  # written after a batch, not inside one event's iteration
)
models: dict[str, type[PredictionLogged] | type[LabelObserved]] = {
    PREDICTIONS: PredictionLogged,
    LABELS: LabelObserved,
}
processor = MetricsProcessor()
states: dict[int, PartitionState] = {}
figures: dict[str, Any] = {"handled": 0, "windows": 0, "snapshots": 0}


@app.agent(source)
async def metrics(stream: Any) -> None:
    handle = processor.handle
    start: float | None = None
    last_checkpoint = 0.0
    handled = 0
    async for events in stream.take_events(BATCH, within=0.2):
        now = time.perf_counter()
        if start is None:
            start = last_checkpoint = now
            figures["first_batch_after_s"] = round(now - STARTED, 2)
        for ev in events:
            msg = ev.message
            p = msg.partition
            state = states.get(p)
            if state is None:
                state = states[p] = PartitionState(partition=p)
            state, closed = handle(decode_event(models[msg.topic], ev.value), state)
            state.offsets[f"{msg.topic}:{p}"] = msg.offset + 1
            for w in closed:
                await windows.send(
                    key=w.model.encode(), value=encode_event(to_event(w, datetime.now(UTC)))
                )
                figures["windows"] += 1
        handled += len(events)
        now = time.perf_counter()
        if now - last_checkpoint >= CHECKPOINT_S or handled >= TOTAL:
            for p, st in states.items():
                snapshots[p] = st.to_json()
                figures["snapshots"] += 1
            last_checkpoint = now
        if handled >= TOTAL and start is not None:
            elapsed = time.perf_counter() - start
            figures.update(handled=handled, events_per_s=round(handled / elapsed))
            with open(OUT, "w") as f:
                f.write(json.dumps(figures))
            os._exit(0)  # faust's orderly shutdown can take many seconds; the figures are out


STARTED = time.perf_counter()

if __name__ == "__main__":
    app.main()
