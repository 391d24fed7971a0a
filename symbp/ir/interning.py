"""Hash-consing: one object per distinct immutable value, for as long as something holds it.

``Interned`` maps a value's key (its fields) to the one object with those fields, through
weak references: an object nothing holds any more is forgotten, so a process compiling
network after network does not accumulate them. It is the table behind ``Node`` and
``Expr``, whose constructors look up every object they are asked to build: a plain dict of
weak references, as that lookup is the hottest path of a compile (a WeakValueDictionary's
methods are Python code).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Any


class _Ref(weakref.ref):
    """A weak reference that knows its key in the table."""

    __slots__ = ("key",)


class Interned:
    """key -> the live object built for it."""

    def __init__(self) -> None:
        self._refs: dict[Hashable, _Ref] = {}
        self._lock = threading.RLock()  # (re-entrant: an object may die while it is held)
        self._callback = self._forget

    def __len__(self) -> int:
        return len(self._refs)

    def get(self, key: Hashable) -> Any | None:
        ref = self._refs.get(key)
        return None if ref is None else ref()

    def intern(self, key: Hashable, make: Callable[[Any], Any]) -> Any:
        """The object for ``key``, made by ``make(key)`` if there is none; two threads
        asking for the same key get the same object."""
        ref = self._refs.get(key)
        if ref is not None:
            obj = ref()
            if obj is not None:
                return obj
        with self._lock:
            ref = self._refs.get(key)
            obj = None if ref is None else ref()
            if obj is None:
                obj = make(key)
                ref = self._refs[key] = _Ref(obj, self._callback)
                ref.key = key
        return obj

    def _forget(self, ref: _Ref) -> None:
        """The callback of a dead object's reference: its entry goes, unless a newer object
        took the key meanwhile."""
        with self._lock:
            if self._refs.get(ref.key) is ref:
                del self._refs[ref.key]
