"""Applying and publishing decisions, and finishing a predecessor's outbox (ADR 0005).

A decision is applied by compare-and-set on the routing table (the decision id is
stored in the table, so a retry recognises its own write), then published to the
decisions topic with the broker's ack awaited. A successor finishing an outbox re-applies
only if the table is still at the decision's base revision, and re-publishes only if the
decision id is not among the last records of the decisions topic yet.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable

import structlog
from confluent_kafka import KafkaError, Producer

from modelguard.adapters.kafka import KafkaConnection
from modelguard.adapters.topic_reader import TopicReadError, read_to_end
from modelguard.contracts.codec import decode_event, encode_event
from modelguard.contracts.decisions import RoutingDecision
from modelguard.contracts.routing import RoutingTable
from modelguard.errors import DependencyError, InvalidInputError
from modelguard.routing import RevisionConflictError
from modelguard.routing import RoutingWriter as RoutingWriter  # re-exported (old path)
from modelguard_services.controller.metrics import ControllerMetrics

#: Seconds to read the tail of the decisions topic before giving up.
TAIL_TIMEOUT = 15.0


def published_decision_ids(connection: KafkaConnection, topic: str, tail: int = 1000) -> set[str]:
    """Decision ids among the last ``tail`` records of every partition of ``topic``.

    Reads by assignment (``read_to_end``: no group membership, nothing committed); the
    group id only satisfies librdkafka and is derived from the topic name (so from the
    deployment). A record that is not a decision is skipped. Raises
    :class:`DependencyError` when the tail cannot be read in time.
    """
    group = f"{topic}-outbox-check-{uuid.uuid4().hex[:8]}"
    seen: set[str] = set()
    try:
        for msg in read_to_end(
            connection, topic, tail=tail, timeout=TAIL_TIMEOUT, settings={"group.id": group}
        ):
            with contextlib.suppress(ValueError):
                seen.add(decode_event(RoutingDecision, msg.value() or b"").decision_id)
    except TopicReadError as exc:
        raise DependencyError(f"could not read the tail of {topic} to check the outbox") from exc
    return seen


def subject(d: RoutingDecision) -> str | None:
    """The version a decision is about: the one losing traffic in a rollback, the one
    gaining it in a ramp or promotion."""
    sign = -1.0 if d.action in ("rollback", "hold") else 1.0
    delta = {v: sign * (w - d.old_weights.get(v, 0.0)) for v, w in d.new_weights.items()}
    best = max(delta, key=lambda v: delta[v], default=None)
    return best if best is not None and delta[best] > 0 else None


class DecisionApplier:
    """Writes decisions to the routing table and publishes them; :attr:`published` holds
    every decision this replica published, in order."""

    def __init__(
        self,
        writer: RoutingWriter,
        producer: Producer,
        connection: KafkaConnection,
        topic: str,
        *,
        actor: str,
        metrics: ControllerMetrics,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        self._writer = writer
        self._producer = producer
        self._connection = connection
        self._topic = topic
        self._actor = actor
        self._metrics = metrics
        self._log = log
        self.published: list[RoutingDecision] = []

    def apply(
        self, decisions: list[RoutingDecision], table: RoutingTable | None
    ) -> list[RoutingDecision] | None:
        """Apply the weight change (if any); decisions with ``revision_after`` set from
        the table, or None on a conflict with another writer."""
        out = []
        for d in decisions:
            if d.new_weights == d.old_weights or d.dry_run:
                out.append(d)
                continue
            written = self.write(d, table)
            if written is None:
                return None
            out.append(d.model_copy(update={"revision_after": written.revision}))
        return out

    def write(self, d: RoutingDecision, table: RoutingTable | None) -> RoutingTable | None:
        """Compare-and-set ``d``'s weights; the table written, or None on a conflict."""
        if d.revision_before is None:
            raise InvalidInputError(
                f"decision {d.decision_id} changes weights without a base revision"
            )
        try:
            return self._writer.write(
                d.model,
                dict(d.new_weights),
                expected_revision=d.revision_before,
                actor=self._actor,
                reason=d.reason[:500],
                decision_id=d.decision_id,
                base=table,
            )
        except RevisionConflictError:
            current = self._writer.read(d.model)
            if current is not None and current.decision_id == d.decision_id:
                return current  # our own earlier write (a retry after a crash)
            self._log.info(
                "routing_conflict",
                model=d.model,
                decision_id=d.decision_id,
                expected=d.revision_before,
                current=current.revision if current else None,
            )
            return None

    def publish(self, decisions: Iterable[RoutingDecision]) -> None:
        """Publish and wait for the broker's ack; :class:`DependencyError` when it fails."""
        errors: list[str] = []

        def delivered(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        batch = list(decisions)
        for d in batch:
            self._producer.produce(
                self._topic,
                key=d.model.encode(),
                value=encode_event(d),
                headers=[("event_type", RoutingDecision.schema_name.encode())],
                on_delivery=delivered,
            )
        remaining = self._producer.flush(10)
        if remaining or errors:
            raise DependencyError(f"decision publish failed: {errors or 'timeout'}")
        for d in batch:
            self.published.append(d)
            self._metrics.count_decision(d)
            self._log.warning(
                "routing_decision",
                model=d.model,
                version=subject(d),
                decision_id=d.decision_id,
                incident_id=d.incident_id,
                action=d.action,
                reason=d.reason,
                old_weights=d.old_weights,
                new_weights=d.new_weights,
                revision=d.revision_after,
                dry_run=d.dry_run,
            )

    def finish(self, pending: list[RoutingDecision]) -> int:
        """Complete decisions a predecessor saved but may not have applied/published;
        returns how many were (re)published."""
        published = published_decision_ids(self._connection, self._topic)
        todo: list[RoutingDecision] = []
        for d in pending:
            if d.new_weights != d.old_weights and not d.dry_run:
                current = self._writer.read(d.model)
                if current is not None and current.decision_id == d.decision_id:
                    d = d.model_copy(update={"revision_after": current.revision})
                elif current is not None and current.revision == d.revision_before:
                    written = self.write(d, current)
                    if written is None:
                        continue
                    d = d.model_copy(update={"revision_after": written.revision})
                else:
                    self._log.warning(
                        "outbox_decision_superseded", model=d.model, decision_id=d.decision_id
                    )
                    continue
            if d.decision_id not in published:
                todo.append(d)
        if todo:
            self.publish(todo)
        return len(todo)
