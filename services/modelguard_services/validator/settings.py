"""Settings of the edge validator (``MODELGUARD_VALIDATOR_*`` environment variables)."""

from __future__ import annotations

from pydantic import Field

from modelguard.adapters.settings import CommonSettings


class ValidatorSettings(CommonSettings):
    """Connection settings plus the validator's consumer group, dedup memory and commit
    interval.

    The consumer group defaults to ``<topic_prefix>-validator`` (``consumer_group``), so
    two deployments (or two tests) with different topic prefixes never share offsets.
    """

    validator_group_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    #: Prediction ids remembered to count a repeated prediction once (most recent first).
    validator_dedup_ids: int = Field(default=100_000, ge=0)
    #: Seconds between commits of the consumed offsets (after the dead letters are
    #: delivered): after a crash at most this much input is read again (at-least-once).
    validator_commit_interval_s: float = Field(default=1.0, gt=0)

    def group_id(self) -> str:
        return self.validator_group_id or self.consumer_group("validator")
