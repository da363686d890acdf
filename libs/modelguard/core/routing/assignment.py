"""Sticky weighted assignment of units to versions (weighted rendezvous hashing).

Each unit gets :data:`MAX_SLOTS` independent uniforms from one keyed BLAKE2b digest
of its id (the key is derived from the *salt*, so two experiments with different salts
assign independently). Each version of a routing table owns a *slot* (stable across
revisions, see :func:`assign_slots`) and scores ``-ln(u_slot) / weight``; the lowest
score wins. The scores are exponential variables with rate ``weight``, so version ``i``
wins with probability ``w_i / sum(w)`` exactly, and:

- the same unit gets the same version while the weights are unchanged;
- when one weight grows and the others shrink proportionally (a ramp), a unit can only
  move *to* the grown version, and exactly the needed share moves;
- a version at weight 0 receives nothing, and restoring old weights (a rollback)
  restores the old assignment of every unit.

>>> t = CompiledTable({"v1": 0.5, "v2": 0.5}, slots={"v1": 0, "v2": 1}, salt="m")
>>> [t.choose(f"u{i}") for i in range(6)] == [t.choose(f"u{i}") for i in range(6)]
True
>>> CompiledTable({"only": 1.0}, slots={"only": 0}, salt="m").choose("anyone")
'only'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from hashlib import blake2b

#: Versions one table can hold at once (16 x 32-bit uniforms from a 64-byte digest).
MAX_SLOTS = 16
_MASK32 = 0xFFFFFFFF
_INV_2_32 = 1.0 / 4294967296.0


def salt_key(salt: str) -> bytes:
    """The 32-byte BLAKE2b key derived from a salt (any length)."""
    return blake2b(salt.encode(), digest_size=32, person=b"mg-salt").digest()


def unit_uniforms(unit_id: str, salt: str) -> list[float]:
    """The :data:`MAX_SLOTS` uniforms in (0, 1) of ``unit_id`` under ``salt``.

    Exposed for tests and other-language ports; :class:`CompiledTable` inlines it.
    """
    h = int.from_bytes(blake2b(unit_id.encode(), digest_size=64, key=salt_key(salt)).digest())
    return [(((h >> (32 * s)) & _MASK32) + 0.5) * _INV_2_32 for s in range(MAX_SLOTS)]


def assign_slots(previous: Mapping[str, int], versions: Iterable[str]) -> dict[str, int]:
    """Slots for ``versions``: kept from ``previous`` where present, else the lowest free.

    >>> assign_slots({"v1": 0, "v2": 1}, ["v2", "v3"])
    {'v2': 1, 'v3': 0}
    """
    wanted = list(dict.fromkeys(versions))
    if len(wanted) > MAX_SLOTS:
        raise ValueError(
            f"weights: {len(wanted)} versions, a routing table holds at most {MAX_SLOTS}"
        )
    slots = {v: previous[v] for v in wanted if v in previous}
    free = (s for s in range(MAX_SLOTS) if s not in set(slots.values()))
    for version in wanted:
        if version not in slots:
            slots[version] = next(free)
    return {v: slots[v] for v in wanted}


class CompiledTable:
    """Routing weights prepared for fast, repeated :meth:`choose` calls.

    ``slots`` maps every version of ``weights`` to a distinct slot in
    ``range(MAX_SLOTS)``; ``salt`` seeds the unit hash (a model name or an experiment
    id). Immutable after construction, so it may be shared between threads.
    """

    __slots__ = ("_entries", "_hasher", "_pair", "_single", "salt", "slots", "weights")

    def __init__(
        self, weights: Mapping[str, float], *, slots: Mapping[str, int], salt: str
    ) -> None:
        if set(weights) != set(slots):
            raise ValueError("slots: must name exactly the versions of weights")
        if len(set(slots.values())) != len(slots) or any(
            not 0 <= s < MAX_SLOTS for s in slots.values()
        ):
            raise ValueError(f"slots: must be distinct integers in [0, {MAX_SLOTS})")
        positive = [(v, float(w)) for v, w in weights.items() if w > 0.0]
        if not positive:
            raise ValueError("weights: no version has a positive weight")
        self.weights = dict(weights)
        self.slots = dict(slots)
        self.salt = salt
        # A keyed hasher with the key block already absorbed: copy() + update() is
        # equivalent to blake2b(unit, key=...) at half the cost.
        self._hasher = blake2b(digest_size=64, key=salt_key(salt))
        # (bit shift of the slot's uniform, 1/weight, version), in slot order.
        self._entries = tuple(
            sorted(((32 * slots[v], 1.0 / w, v) for v, w in positive), key=lambda e: e[0])
        )
        self._single = positive[0][0] if len(positive) == 1 else None
        # the common champion/challenger case, unrolled (same result as the loop)
        self._pair = self._entries if len(self._entries) == 2 else None

    def choose(self, unit_id: str) -> str:
        """The version serving ``unit_id``."""
        if self._single is not None:
            return self._single
        hasher = self._hasher.copy()
        hasher.update(unit_id.encode())
        h = int.from_bytes(hasher.digest())
        log = math.log
        pair = self._pair
        if pair is not None:
            (shift_a, inv_a, version_a), (shift_b, inv_b, version_b) = pair
            score_a = -log((((h >> shift_a) & _MASK32) + 0.5) * _INV_2_32) * inv_a
            score_b = -log((((h >> shift_b) & _MASK32) + 0.5) * _INV_2_32) * inv_b
            return version_a if score_a <= score_b else version_b
        best = ""
        best_score = math.inf
        for shift, inv_weight, version in self._entries:
            score = -log((((h >> shift) & _MASK32) + 0.5) * _INV_2_32) * inv_weight
            if score < best_score:
                best_score = score
                best = version
        return best

    def __repr__(self) -> str:
        return f"CompiledTable(weights={self.weights!r}, salt={self.salt!r})"
