"""Which adapters stay resident: least recently used eviction under a byte budget.

Pure bookkeeping (no torch), so the policy is tested on its own and shared by runtimes.
The adapter being loaded or used is never a victim, even when it alone exceeds the budget
(refusing it would fail the request; the budget is a target, the log says when it is
exceeded). Thread-safe: the torch runtime mutates it in its worker thread while the gRPC
thread lists it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class AdapterLRU:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._sizes

    def __len__(self) -> int:
        with self._lock:
            return len(self._sizes)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def touch(self, key: str) -> None:
        """Mark `key` as just used."""
        with self._lock:
            self._sizes.move_to_end(key)

    def add(self, key: str, size_bytes: int) -> list[str]:
        """Record a newly loaded adapter; return the keys to evict (oldest first), already removed."""
        with self._lock:
            self._sizes[key] = size_bytes
            self._sizes.move_to_end(key)
            victims: list[str] = []
            total = sum(self._sizes.values())
            for old in list(self._sizes):
                if total <= self.budget_bytes:
                    break
                if old == key:
                    continue
                total -= self._sizes.pop(old)
                victims.append(old)
            return victims

    def remove(self, key: str) -> None:
        with self._lock:
            self._sizes.pop(key, None)

    def items(self) -> list[tuple[str, int]]:
        """(key, bytes), least recently used first."""
        with self._lock:
            return list(self._sizes.items())
