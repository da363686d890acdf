"""Pure routing logic: weight validation and sticky, weighted assignment of units.

>>> from modelguard.core.routing import CompiledTable, validate_weights
>>> weights = validate_weights({"v1": 0.9, "v2": 0.1})
>>> table = CompiledTable(weights, slots={"v1": 0, "v2": 1}, salt="fraud")
>>> table.choose("user-42") in {"v1", "v2"}
True
>>> table.choose("user-42") == table.choose("user-42")  # sticky
True

Assignment is weighted rendezvous hashing (see :mod:`modelguard.core.routing.assignment`):
exact proportions, the same unit keeps its version while weights are unchanged, and
when one weight grows (the others shrinking proportionally) only units that must move
to it move. A rollback to the old weights returns every unit to its old version.
"""

from modelguard.core.routing.assignment import (
    MAX_SLOTS,
    CompiledTable,
    assign_slots,
    unit_uniforms,
)
from modelguard.core.routing.weights import (
    WEIGHT_TOLERANCE,
    WeightsError,
    normalize_weights,
    validate_weights,
)

__all__ = [
    "MAX_SLOTS",
    "WEIGHT_TOLERANCE",
    "CompiledTable",
    "WeightsError",
    "assign_slots",
    "normalize_weights",
    "unit_uniforms",
    "validate_weights",
]
