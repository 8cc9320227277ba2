"""Deterministic assignment by salted hash: fixed-weight A/B splits and holdouts.

A recipient's bucket is ``blake2b(salt, namespace, experiment, recipient)`` read as a uniform
number in ``[0, 1)``. The same inputs always give the same bucket (no state to store, the same
answer on every replica), and a new salt reshuffles everyone. Holdouts and variant splits hash
under different namespaces so that being held out says nothing about the variant one would
have received.

Examples
--------
>>> split = FixedSplit(weights={"control": 0.5, "new": 0.5})
>>> split.assign("s3cret", "exp-1", "r-42") == split.assign("s3cret", "exp-1", "r-42")
True
>>> in_holdout("s3cret", "exp-1", "r-42", percentage=0.0)
False
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from inboxlab.errors import InvalidInputError

__all__ = ["FixedSplit", "hash_unit", "in_holdout"]

_SEPARATOR = b"\x1f"  # ASCII unit separator: cannot occur in the ids, so joins are unambiguous


def hash_unit(salt: str, namespace: str, experiment_id: str, recipient_id: str) -> float:
    """A uniform number in ``[0, 1)`` determined by the salted inputs.

    Parameters
    ----------
    salt : str
        Deployment secret; changing it reshuffles every assignment.
    namespace : str
        What the number is for (``"variant"``, ``"holdout"``), so uses stay independent.
    experiment_id, recipient_id : str
        The unit being assigned.

    Examples
    --------
    >>> u = hash_unit("salt", "variant", "exp-1", "r-1")
    >>> 0.0 <= u < 1.0, u == hash_unit("salt", "variant", "exp-1", "r-1")
    (True, True)
    """
    message = _SEPARATOR.join(
        part.encode() for part in (salt, namespace, experiment_id, recipient_id)
    )
    digest = hashlib.blake2b(message, digest_size=8).digest()
    # 64 bits / 2**64 is exactly representable below 1.0 only after dropping to 53 bits,
    # the precision of a double; shifting keeps the result strictly below 1.
    return (int.from_bytes(digest, "big") >> 11) / float(1 << 53)


@dataclass(frozen=True, slots=True)
class FixedSplit:
    """A fixed-weight split of recipients over variants.

    Parameters
    ----------
    weights : mapping of str to float
        Variant id to its share; shares must be positive and sum to 1 (within 1e-9).

    Examples
    --------
    >>> FixedSplit(weights={"a": 0.2, "b": 0.8}).assign("salt", "exp", "r-7")
    ('b', 0.8)
    """

    weights: Mapping[str, float]
    _edges: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.weights:
            raise InvalidInputError("weights needs at least one variant", field="weights")
        bad = {k: w for k, w in self.weights.items() if not (w > 0 and math.isfinite(w))}
        if bad:
            raise InvalidInputError(f"weights must be positive, got {bad}", field="weights")
        total = math.fsum(self.weights.values())
        if abs(total - 1.0) > 1e-9:
            raise InvalidInputError(f"weights must sum to 1, got {total}", field="weights")
        # Freeze a copy: a caller mutating its dict must not move recipients between arms.
        object.__setattr__(self, "weights", MappingProxyType(dict(self.weights)))
        edges: list[float] = []
        running = 0.0
        for w in self.weights.values():
            running += w
            edges.append(running)
        edges[-1] = 1.0  # absorb rounding so every u in [0, 1) has a bucket
        object.__setattr__(self, "_edges", tuple(edges))

    def assign(self, salt: str, experiment_id: str, recipient_id: str) -> tuple[str, float]:
        """The recipient's variant and its configured weight (the logged propensity)."""
        u = hash_unit(salt, "variant", experiment_id, recipient_id)
        for (variant, weight), edge in zip(self.weights.items(), self._edges, strict=True):
            if u < edge:
                return variant, weight
        raise AssertionError("unreachable: the last edge is 1.0")  # pragma: no cover


def in_holdout(salt: str, scope: str, recipient_id: str, *, percentage: float) -> bool:
    """Whether the recipient falls in the ``percentage`` % holdout of ``scope``.

    ``scope`` is an experiment id, or a fixed name such as ``"global"`` for the global holdout.

    Examples
    --------
    >>> in_holdout("salt", "global", "r-1", percentage=100.0)
    True
    """
    if not 0 <= percentage <= 100:
        raise InvalidInputError(
            f"holdout percentage must be in [0, 100], got {percentage}", field="percentage"
        )
    return hash_unit(salt, "holdout", scope, recipient_id) < percentage / 100.0
