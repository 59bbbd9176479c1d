"""The notifier's configuration: the YAML file of ``STATIONWATCH_NOTIFY_CONFIG``, shaped like
Alertmanager's (``route``, ``receivers``, ``inhibit_rules``).

Frozen pydantic models, validated whole: an unknown field, a duration that is not one, a regex
that does not compile, a receiver with two channels or a route naming a receiver nobody
declared is an error. :func:`load_config` turns any problem into one
:class:`~stationwatch.errors.ConfigurationError` naming the file, the line and the field path,
so the notifier stops at start (or ``--check-config`` says why).

Receivers and their channels' settings are in :mod:`consumers.receivers`; inheritance of
unset route values and the defaults live in :mod:`consumers.routing`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from consumers.receivers import (
    ConfigModel,
    Duration,
    Name,
    PositiveDuration,
    ReceiverConfig,
)
from consumers.silences import LABEL_NAME, Matcher, compile_regex, parse_matcher
from stationwatch.errors import ConfigurationError


def _label_name(value: str) -> str:
    if not LABEL_NAME.fullmatch(value):
        raise ValueError(f"not a label name: {value!r} (letters, digits and _)")
    return value


def _group_label(value: str) -> str:
    return value if value == "..." else _label_name(value)


def _regex(value: str) -> str:
    compile_regex(value)
    return value


LabelName = Annotated[str, AfterValidator(_label_name)]
GroupLabel = Annotated[str, AfterValidator(_group_label)]
Regex = Annotated[str, AfterValidator(_regex)]


class RouteConfig(ConfigModel):
    """One node of the routing tree as written; unset values come from the parent."""

    receiver: Name | None = None
    group_by: tuple[GroupLabel, ...] | None = None  # "..." alone: every label, one alert a group
    group_wait: Duration | None = None
    group_interval: PositiveDuration | None = None
    repeat_interval: PositiveDuration | None = None
    send_resolved: bool | None = None
    match: dict[LabelName, str] = Field(default_factory=dict)
    match_re: dict[LabelName, Regex] = Field(default_factory=dict)  # whole value must match
    matchers: tuple[Matcher, ...] = ()  # Alertmanager's newer form: "street=~空港.*"
    continue_: bool = Field(False, alias="continue")
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value and "..." in value and len(value) > 1:
            raise ValueError('"..." groups by every label and stands alone')
        if value and len(set(value)) != len(value):
            raise ValueError("a label is named twice")
        return value

    @cached_property
    def all_matchers(self) -> tuple[Matcher, ...]:
        equal = (Matcher(name, "=", value) for name, value in self.match.items())
        regex = (Matcher(name, "=~", value) for name, value in self.match_re.items())
        return (*equal, *regex, *self.matchers)


class InhibitRuleConfig(ConfigModel):
    """Mute alerts matching the target while a firing alert matches the source with the same
    values for every ``equal`` label (Alertmanager's ``inhibit_rules`` entry)."""

    source_matchers: tuple[Matcher, ...] = ()
    target_matchers: tuple[Matcher, ...] = ()
    source_match: dict[LabelName, str] = Field(default_factory=dict)
    target_match: dict[LabelName, str] = Field(default_factory=dict)
    source_match_re: dict[LabelName, Regex] = Field(default_factory=dict)
    target_match_re: dict[LabelName, Regex] = Field(default_factory=dict)
    equal: tuple[LabelName, ...] = ()

    @cached_property
    def sources(self) -> tuple[Matcher, ...]:
        return _combine(self.source_match, self.source_match_re, self.source_matchers)

    @cached_property
    def targets(self) -> tuple[Matcher, ...]:
        return _combine(self.target_match, self.target_match_re, self.target_matchers)

    @model_validator(mode="after")
    def _both_sides(self) -> InhibitRuleConfig:
        if not self.sources or not self.targets:
            raise ValueError("a rule needs source and target matchers (it would mute everything)")
        return self


def _combine(
    match: dict[str, str], match_re: dict[str, str], matchers: tuple[Matcher, ...]
) -> tuple[Matcher, ...]:
    equal = (Matcher(name, "=", value) for name, value in match.items())
    return (*equal, *(Matcher(n, "=~", v) for n, v in match_re.items()), *matchers)


# The rule: a station that is offline is not also reported as late.
DEFAULT_INHIBIT_RULES = (
    InhibitRuleConfig(
        source_matchers=(parse_matcher("kind=offline"),),
        target_matchers=(parse_matcher("kind=stale"),),
        equal=("station_id",),
    ),
)


class NotifyConfig(ConfigModel):
    route: RouteConfig
    receivers: tuple[ReceiverConfig, ...]
    inhibit_rules: tuple[InhibitRuleConfig, ...] = ()

    @field_validator("route")
    @classmethod
    def _top_route(cls, route: RouteConfig) -> RouteConfig:
        if route.receiver is None:
            raise ValueError("the top route needs a receiver: it catches every alert")
        if route.all_matchers or route.continue_:
            raise ValueError("the top route matches everything: no match, matchers or continue")
        return route

    @model_validator(mode="after")
    def _references(self) -> NotifyConfig:
        problems: list[InitErrorDetails] = []
        if not self.receivers:
            problems.append(_problem("at least one receiver", ("receivers",), []))
        seen: set[str] = set()
        for index, receiver in enumerate(self.receivers):
            if receiver.name in seen:
                message = f"receiver named twice: {receiver.name}"
                problems.append(_problem(message, ("receivers", index, "name"), receiver.name))
            seen.add(receiver.name)
        for where, route in _walk(self.route, ("route",)):
            if route.receiver is not None and route.receiver not in seen:
                message = (
                    f"no receiver named {route.receiver}; receivers: {', '.join(sorted(seen))}"
                )
                problems.append(_problem(message, (*where, "receiver"), route.receiver))
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, problems)
        return self

    def receiver(self, name: str) -> ReceiverConfig:
        return next(r for r in self.receivers if r.name == name)

    @property
    def effective_inhibit_rules(self) -> tuple[InhibitRuleConfig, ...]:
        """The built-in rules, then the file's."""
        return (*DEFAULT_INHIBIT_RULES, *self.inhibit_rules)


def _walk(
    route: RouteConfig, where: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], RouteConfig]]:
    yield where, route
    for index, child in enumerate(route.routes):
        yield from _walk(child, (*where, "routes", index))


def _problem(message: str, where: tuple[str | int, ...], value: object) -> InitErrorDetails:
    # no context: the message is taken as written, braces and all
    return InitErrorDetails(type=PydanticCustomError("reference", message), loc=where, input=value)


def load_config(path: str | os.PathLike[str]) -> NotifyConfig:
    """Read and validate a notifier configuration file; any problem is a ConfigurationError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{file}: cannot read the notifier configuration: {exc}") from exc
    return load_config_text(text, source=str(file), base_dir=file.parent)


def load_config_text(
    text: str, source: str = "<text>", base_dir: Path | None = None
) -> NotifyConfig:
    """Validate configuration text; ``source`` names it in messages, ``base_dir`` anchors
    relative secret-file paths."""
    root, data = _read_yaml(text, source)
    try:
        return NotifyConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        lines = [_describe(root, source, error) for error in exc.errors(include_url=False)]
        raise ConfigurationError("\n".join(lines)) from None


# -- YAML with line numbers: compose the node tree, keep it to map a field path to a line ----


def _read_yaml(text: str, source: str) -> tuple[yaml.Node, dict[str, Any]]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigurationError(f"{source}: empty; a configuration needs route and receivers")
        duplicate = _first_duplicate(root, ())
        if duplicate is not None:
            raise ConfigurationError(f"{source}:{duplicate}")
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        context = f" ({exc.context})" if exc.context else ""
        raise ConfigurationError(f"{source}{line}: not YAML: {exc.problem}{context}") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{source}: not YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigurationError(f"{source}:1: the top level must be a mapping (route, …)")
    return root, data


def _first_duplicate(node: yaml.Node, path: tuple[str | int, ...]) -> str | None:
    """``line: path: duplicate key …`` for the first key written twice in one mapping."""
    if isinstance(node, yaml.SequenceNode):
        items = (_first_duplicate(item, (*path, i)) for i, item in enumerate(node.value))
        return next((found for found in items if found is not None), None)
    if not isinstance(node, yaml.MappingNode):
        return None
    seen: dict[object, int] = {}
    for key, value in node.value:
        line = key.start_mark.line + 1
        if isinstance(key, yaml.ScalarNode) and key.value in seen:
            where = _dotted((*path, key.value))
            return f"{line}: {where}: duplicate key (first at line {seen[key.value]})"
        seen[key.value if isinstance(key, yaml.ScalarNode) else id(key)] = line
        found = _first_duplicate(value, (*path, str(key.value)))
        if found is not None:
            return found
    return None


def _line(root: yaml.Node, loc: tuple[str | int, ...]) -> int:
    """The line of the deepest node ``loc`` reaches (the key's line for a mapping entry)."""
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            hits = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
            hit = next((h for h in reversed(hits) if h[0].value == part), None)
            if hit is None:
                break
            node, line = hit[1], hit[0].start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if not 0 <= part < len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _describe(root: yaml.Node, source: str, error: Any) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "value_error":
        message = str(error["ctx"]["error"])
    elif kind == "missing":
        message = "required, missing"
    elif kind == "extra_forbidden":
        message = "unknown field"
    else:
        message = error["msg"]
    return f"{source}:{_line(root, loc)}: {_dotted(loc) or '(top level)'}: {message}"


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in loc)
