"""FrozenMap: the IR's immutable mapping, and :func:`freeze`, which makes a value
immutable all the way down.

A read-only ``MappingProxyType`` cannot be deep-copied or pickled (fx deep-copies a
GraphModule's meta, which holds the Graph); a frozen dataclass holding a ``dict`` is not
frozen. A FrozenMap has no mutating method, compares equal to any mapping with the same
items, hashes when its values do, deep-copies and pickles as itself.

>>> m = FrozenMap({"x": (3, 32, 32)})
>>> m["x"], m == {"x": (3, 32, 32)}, hash(m) == hash(FrozenMap(x=(3, 32, 32)))
((3, 32, 32), True, True)
>>> m["y"] = (1,)
Traceback (most recent call last):
TypeError: 'FrozenMap' object does not support item assignment
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

K = TypeVar("K")
V = TypeVar("V", covariant=True)


class FrozenMap(Mapping[K, V]):
    """An immutable mapping that keeps insertion order."""

    __slots__ = ("_d", "_hash")

    _d: dict[K, V]
    _hash: int | None

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = (), /, **kw: V) -> None:
        object.__setattr__(self, "_d", dict(items, **kw))
        object.__setattr__(self, "_hash", None)

    def __getitem__(self, key: K) -> V:
        return self._d[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._d == other._d
        if isinstance(other, Mapping):
            return self._d == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:  # raises TypeError when a value is unhashable, as a tuple does
            object.__setattr__(self, "_hash", hash(frozenset(self._d.items())))
        assert self._hash is not None
        return self._hash

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"'FrozenMap' object is immutable (cannot set '{name}')")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"'FrozenMap' object is immutable (cannot delete '{name}')")

    def __reduce__(self) -> tuple[type[FrozenMap[K, V]], tuple[dict[K, V]]]:
        return (type(self), (self._d,))  # pickle and deepcopy rebuild it from its items

    def __or__(self, other: Mapping[K, V]) -> FrozenMap[K, V]:  # Mapping has no |: a new FrozenMap
        return FrozenMap({**self._d, **other})

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"

    def get(self, key: K, default: Any = None) -> Any:  # dict's get: faster than Mapping's
        return self._d.get(key, default)


def freeze(value: Any) -> Any:
    """``value`` immutable all the way down: mappings become FrozenMaps and lists tuples
    (their items frozen too); anything else is returned as it is."""
    if isinstance(value, FrozenMap):
        return value if all(_is_frozen(v) for v in value.values()) else FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, Mapping):
        return FrozenMap({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def _is_frozen(value: Any) -> bool:
    if isinstance(value, FrozenMap):
        return all(_is_frozen(v) for v in value.values())
    if isinstance(value, tuple):
        return all(_is_frozen(v) for v in value)
    return not isinstance(value, list | dict | set | Mapping)


def value_key(value: Any) -> Any:
    """A hashable key equal only for values of the same types and contents (``1``,
    ``1.0`` and ``True`` differ: the attribute models are strict)."""
    if isinstance(value, dict):
        return (dict, tuple((k, value_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value), tuple(value_key(v) for v in value))
    if isinstance(value, str | int | float | bool) or value is None:
        return (type(value), value)
    return (type(value), object())  # anything else: a key equal to no other
