"""Which input offsets the notifier may commit: a record's offset is committed only once every
notice it causes has been delivered, has definitively failed, or was not needed (already told,
silenced, inhibited). Pure: the runner feeds it records and settlements.

Records are held under a token (the alert group they went into) with a sequence number; a notice
about a group settles every record the group had taken when the notice was made. A partition's
commit position is its oldest unsettled record, or one past the newest record seen.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

TP = TypeVar("TP", bound=Hashable)


@dataclass
class OffsetTracker(Generic[TP]):
    _seq: int = 0
    _next: dict[TP, int] = field(default_factory=dict)  # one past the newest offset seen
    _held: dict[TP, dict[int, tuple[Hashable, int]]] = field(default_factory=dict)
    _by_token: dict[Hashable, dict[tuple[TP, int], int]] = field(default_factory=dict)
    _committed: dict[TP, int] = field(default_factory=dict)

    @property
    def sequence(self) -> int:
        """The sequence number of the newest record held (a notice made now covers it)."""
        return self._seq

    def seen(self, tp: TP, offset: int) -> None:
        """A record was consumed and needs nothing more (or is already handled)."""
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def hold(self, tp: TP, offset: int, token: Hashable) -> None:
        """A record went into the group ``token``: keep its offset until a notice settles it."""
        self.seen(tp, offset)
        self._seq += 1
        self._held.setdefault(tp, {})[offset] = (token, self._seq)
        self._by_token.setdefault(token, {})[(tp, offset)] = self._seq

    def settle(self, token: Hashable, upto: int | None = None) -> int:
        """Release the records of ``token`` held at sequence ``upto`` or before (all: None);
        returns how many were released."""
        held = self._by_token.get(token)
        if not held:
            return 0
        done = [key for key, seq in held.items() if upto is None or seq <= upto]
        for tp, offset in done:
            del held[(tp, offset)]
            self._held[tp].pop(offset, None)
        if not held:
            del self._by_token[token]
        return len(done)

    def holds(self, token: Hashable) -> bool:
        return bool(self._by_token.get(token))

    def tokens(self) -> list[Hashable]:
        return list(self._by_token)

    def position(self, tp: TP) -> int | None:
        held = self._held.get(tp)
        if held:
            return min(held)
        return self._next.get(tp)

    def commits(self) -> dict[TP, int]:
        """The partitions whose commit position moved since the last :meth:`committed`."""
        moved: dict[TP, int] = {}
        for tp in self._next:
            position = self.position(tp)
            if position is not None and position != self._committed.get(tp):
                moved[tp] = position
        return moved

    def committed(self, positions: dict[TP, int]) -> None:
        """The broker has these positions (only then: a failed commit is tried again)."""
        self._committed.update(positions)

    def forget(self, tps: Iterable[TP]) -> None:
        """The partitions were revoked: drop what is held for them."""
        for tp in tps:
            for offset, (token, _seq) in self._held.pop(tp, {}).items():
                by_token = self._by_token.get(token)
                if by_token is not None:
                    by_token.pop((tp, offset), None)
                    if not by_token:
                        del self._by_token[token]
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
