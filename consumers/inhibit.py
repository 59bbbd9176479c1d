"""Inhibition: an alert is muted while a firing alert says the same thing louder.

Alertmanager's ``inhibit_rules``: an alert matching a rule's target matchers is inhibited while
some FIRING alert matches the rule's source matchers and has the same value for every label in
``equal`` (a label neither has counts as equal, as in Alertmanager); an alert never inhibits
itself. The built-in rule (:data:`consumers.config.DEFAULT_INHIBIT_RULES`): ``offline`` inhibits
``stale`` of the same ``station_id`` — a station that is down is not also reported as late.

A target is muted whatever its own state, so the ``stale`` episode that ends when its station
goes offline is not announced as recovered while the station is offline.

:class:`Inhibitor` follows every alert the notifier reads (before silences and grouping) and
answers for one alert at a time; :func:`mute_reason` puts inhibition and silences together for
the grouping engine's ``mute`` check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from consumers.config import DEFAULT_INHIBIT_RULES, InhibitRuleConfig, NotifyConfig
from consumers.notice import NoticeAlert
from consumers.silences import Matcher, Silence, matches_all, silenced_by


@dataclass(frozen=True, slots=True)
class InhibitRule:
    sources: tuple[Matcher, ...]
    targets: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, rule: InhibitRuleConfig) -> InhibitRule:
        return cls(rule.sources, rule.targets, rule.equal)

    def key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in self.equal)


@dataclass(frozen=True, slots=True)
class Mute:
    """Why an alert is kept from a receiver: ``by`` is the inhibiting alert's fingerprint or
    the silences' ids."""

    reason: Literal["inhibited", "silenced"]
    by: tuple[str, ...]


class Inhibitor:
    """The firing alerts that can inhibit others, indexed by rule and ``equal`` values."""

    def __init__(self, rules: Iterable[InhibitRule | InhibitRuleConfig]) -> None:
        self._rules = tuple(
            r if isinstance(r, InhibitRule) else InhibitRule.from_config(r) for r in rules
        )
        # per rule: equal-label values → {source fingerprint: its alert id}
        self._sources: list[dict[tuple[str, ...], dict[str, str]]] = [{} for _ in self._rules]
        self._held: dict[str, list[tuple[int, tuple[str, ...]]]] = {}  # fingerprint → where

    @classmethod
    def from_config(cls, config: NotifyConfig | None = None) -> Inhibitor:
        """The built-in rules and the configuration's (only the built-in without one)."""
        return cls(config.effective_inhibit_rules if config else DEFAULT_INHIBIT_RULES)

    @property
    def rules(self) -> tuple[InhibitRule, ...]:
        return self._rules

    def observe(self, alert: NoticeAlert) -> None:
        """Follow one alert message: a firing source starts inhibiting, its resolution stops."""
        held = self._held.get(alert.fingerprint)
        if alert.status == "resolved":
            if held and self._alert_id(held[0], alert.fingerprint) == alert.alert_id:
                self._forget(alert.fingerprint)
            return
        if held:
            self._forget(alert.fingerprint)  # a newer episode of the same source replaces it
        where = [
            (index, rule.key(alert.labels))
            for index, rule in enumerate(self._rules)
            if matches_all(rule.sources, alert.labels)
        ]
        for index, key in where:
            self._sources[index].setdefault(key, {})[alert.fingerprint] = alert.alert_id
        if where:
            self._held[alert.fingerprint] = where

    def inhibited_by(self, alert: NoticeAlert) -> str | None:
        """The fingerprint of a firing alert inhibiting this one, or None."""
        for index, rule in enumerate(self._rules):
            if not matches_all(rule.targets, alert.labels):
                continue
            sources = self._sources[index].get(rule.key(alert.labels), {})
            found = next((fp for fp in sorted(sources) if fp != alert.fingerprint), None)
            if found is not None:
                return found
        return None

    def _alert_id(self, where: tuple[int, tuple[str, ...]], fingerprint: str) -> str | None:
        index, key = where
        return self._sources[index].get(key, {}).get(fingerprint)

    def _forget(self, fingerprint: str) -> None:
        for index, key in self._held.pop(fingerprint, []):
            sources = self._sources[index].get(key, {})
            sources.pop(fingerprint, None)
            if not sources:
                self._sources[index].pop(key, None)


def mute_reason(
    alert: NoticeAlert, inhibitor: Inhibitor, silences: Sequence[Silence], now: datetime
) -> Mute | None:
    """Why the alert must not be delivered now (inhibition first, then silences), or None."""
    source = inhibitor.inhibited_by(alert)
    if source is not None:
        return Mute("inhibited", (source,))
    active = silenced_by(alert.labels, silences, now)
    if active:
        return Mute("silenced", tuple(s.id for s in active))
    return None
