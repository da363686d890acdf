"""The one deterministic event-id scheme (window, merged-window, decision, incident,
rollout and drift-signal ids): a replay, a restarted processor or a successor replica
derives the same id from the same parts, so consumers can deduplicate by id.
"""

from __future__ import annotations

import hashlib

#: Separator of the hashed parts (a control character: no name or number contains it).
PART_SEPARATOR = "\x1f"
#: Hex digits of SHA-256 kept (80 bits: collisions are negligible at any realistic volume).
DIGEST_HEX_CHARS = 20


def stable_id(prefix: str, *parts: object) -> str:
    """``prefix-`` + 20 hex chars of SHA-256 over ``str(part)`` joined by ``\\x1f``.

    >>> stable_id("dec", "fraud", "v2", 3)
    'dec-3450f8c2e7f011b35404'
    >>> stable_id("dec", "fraud", "v2", 3) == stable_id("dec", "fraud", "v2", "3")
    True
    """
    raw = PART_SEPARATOR.join(str(p) for p in parts)
    return f"{prefix}-{hashlib.sha256(raw.encode()).hexdigest()[:DIGEST_HEX_CHARS]}"
