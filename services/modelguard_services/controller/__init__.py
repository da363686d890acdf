"""Rollback controller: metric windows and drift signals in, routing decisions out.

Only the replica holding the leader lease consumes and decides; its state (per-model
decision state, input offsets and an outbox of decisions being applied) is saved in
Redis, fenced by the lease, so a successor continues exactly where it stopped (ADR 0004).
"""
