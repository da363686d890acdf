"""An event the producer refuses outright is dropped and counted, never raised into the
request path (``modelguard.sdk`` guarantees: "the caller is never blocked and never
sees a delivery error").

Before: ``emit_prediction`` / ``emit_label`` caught only ``BufferError``; a
``KafkaException`` from ``produce()`` (here ``MSG_SIZE_TOO_LARGE`` under a
``message.max.bytes`` smaller than the contract's 64 KiB; in production e.g. a fatal
idempotence error, which refuses every later event) reached the model server's request.

No broker: the producer points at a closed port and never connects.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from modelguard.sdk import EventSDK

FEATURES = {f"f{i}": "x" * 100 for i in range(30)}  # about 3.5 kB encoded


def test_a_refused_event_is_dropped_and_counted_not_raised() -> None:
    registry = CollectorRegistry()
    sdk = EventSDK(
        "127.0.0.1:1",
        registry=registry,
        message_timeout_s=1,
        producer_config={"message.max.bytes": 2000},
    )
    try:
        pid = sdk.emit_prediction(
            model="fraud", version="v1", prediction=1, latency_ms=1.0, features=FEATURES
        )
        sdk.emit_label(prediction_id=pid, label=1, model="fraud")  # small: queued
        sdk.emit_prediction(model="fraud", version="v1", prediction=1, latency_ms=1.0)
        assert sdk.dropped == {"prediction": 1} and sdk.produce_errors == {"prediction": 1}
        assert sdk.queued["prediction"] == 1 and sdk.queued["label"] == 1

        def dropped(reason: str) -> float | None:
            return registry.get_sample_value(
                "modelguard_sdk_dropped_total", {"event_type": "prediction", "reason": reason}
            )

        assert dropped("produce_error") == 1.0
        assert dropped("buffer_full") == 0.0
    finally:
        sdk.close(timeout=0)
