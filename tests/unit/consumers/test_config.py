"""The notifier's configuration file: what loads, what it means, and what an operator is told
(file, line, field) when it does not."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from consumers.config import DEFAULT_INHIBIT_RULES, NotifyConfig, load_config, load_config_text
from consumers.receivers import DingtalkConfig, EmailConfig, parse_duration
from stationwatch.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "notify.example.yaml"

MINIMAL = """\
route:
  receiver: ops
receivers:
  - name: ops
    webhook: {url: "http://ops.example/hook"}
"""


def load(text: str) -> NotifyConfig:
    return load_config_text(textwrap.dedent(text), source="notify.yaml")


def test_the_documented_example_loads() -> None:
    config = load_config(EXAMPLE)
    kinds = {r.name: r.kind for r in config.receivers}
    assert kinds["konggang-wecom"] == "wecom"
    assert kinds["houshayu-dingtalk"] == "dingtalk"
    assert kinds["shunyi-duty-mail"] == "email"
    assert kinds["ops-webhook"] == "webhook"
    assert config.route.routes[0].match == {"street": "空港街道", "severity": "critical"}
    assert config.inhibit_rules  # an operator's rules next to the built-in one


def test_secret_files_are_paths_beside_the_file_not_read() -> None:
    config = load_config(EXAMPLE)
    robot = config.receiver("houshayu-dingtalk").channel
    assert isinstance(robot, DingtalkConfig)
    assert robot.secret_file == EXAMPLE.parent / "secrets" / "dingtalk-houshayu.secret"
    assert not robot.secret_file.exists()  # named, not needed until a channel reads it


def test_a_minimal_file_takes_alertmanager_like_defaults() -> None:
    config = load(MINIMAL)
    assert config.route.receiver == "ops"
    assert config.route.group_by is None  # unset here; routing applies [street, kind]
    assert config.inhibit_rules == ()
    assert config.effective_inhibit_rules == DEFAULT_INHIBIT_RULES
    (rule,) = DEFAULT_INHIBIT_RULES
    assert [str(m) for m in rule.sources] == ['kind="offline"']
    assert [str(m) for m in rule.targets] == ['kind="stale"']
    assert rule.equal == ("station_id",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2m5s", timedelta(minutes=2, seconds=5)),
        ("0s", timedelta(0)),
        (" 90s ", timedelta(seconds=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["30", 30, "", " ", "1.5h", "5 m", "30d", "m", "1m1h", "-5m", None])
def test_not_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_email_settings() -> None:
    config = load(
        MINIMAL
        + """\
  - name: mail
    email: {to: duty@example.org, from: "驿站监控 <sw@example.org>",
            smarthost: "smtp.example.org:465", tls: true,
            username: sw, password_file: /run/secrets/smtp}
"""
    )
    mail = config.receiver("mail").channel
    assert isinstance(mail, EmailConfig)
    assert mail.to == ("duty@example.org",)
    assert (mail.host, mail.port, mail.security) == ("smtp.example.org", 465, "tls")
    assert mail.password_file == Path("/run/secrets/smtp")


# Each broken file marks the line the message must name with "# <-".
BROKEN = {
    "unknown receiver in a nested route": (
        """\
        route:
          receiver: ops
          routes:
            - match: {street: 空港街道}
              routes:
                - match: {kind: offline}
                  receiver: konggang  # <-
        receivers:
          - name: ops
            webhook: {url: "http://ops.example/hook"}
        """,
        "route.routes.0.routes.0.receiver: no receiver named konggang; receivers: ops",
    ),
    "bad duration": (
        """\
        route:
          receiver: ops
          group_wait: 30 seconds  # <-
        receivers: [{name: ops, console: {}}]
        """,
        "route.group_wait: not a duration: '30 seconds'",
    ),
    "a bare number is no duration": (
        """\
        route:
          receiver: ops
          routes:
            - receiver: ops
              repeat_interval: 3600  # <-
        receivers: [{name: ops, console: {}}]
        """,
        "route.routes.0.repeat_interval: not a duration: 3600",
    ),
    "zero group_interval": (
        """\
        route:
          receiver: ops
          group_interval: 0s  # <-
        receivers: [{name: ops, console: {}}]
        """,
        "route.group_interval: must be longer than 0s",
    ),
    "bad regex": (
        """\
        route:
          receiver: ops
          routes:
            - receiver: ops
              match_re:
                street: "空港(街道"  # <-
        receivers: [{name: ops, console: {}}]
        """,
        "route.routes.0.match_re.street: not a valid regular expression '空港(街道'",
    ),
    "two channel kinds in one receiver": (
        """\
        route: {receiver: ops}
        receivers:
          - name: ops
            console: {}
          - name: both  # <-
            webhook: {url: "http://ops.example/hook"}
            wecom: {url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"}
        """,
        "receivers.1: a receiver takes exactly one of webhook, wecom, dingtalk, email, "
        "alertmanager, console; found 2: webhook, wecom",
    ),
    "a receiver without a channel": (
        """\
        route: {receiver: ops}
        receivers:
          - name: ops  # <-
        """,
        "receivers.0: a receiver takes exactly one of",
    ),
    "receiver named twice": (
        """\
        route: {receiver: ops}
        receivers:
          - name: ops
            console: {}
          - name: ops  # <-
            webhook: {url: "http://ops.example/hook"}
        """,
        "receivers.1.name: receiver named twice: ops",
    ),
    "misspelt field": (
        """\
        route:
          receiver: ops
          group_wiat: 30s  # <-
        receivers: [{name: ops, console: {}}]
        """,
        "route.group_wiat: unknown field",
    ),
    "top route without receiver": (
        """\
        route:  # <-
          group_by: [street]
        receivers: [{name: ops, console: {}}]
        """,
        "route: the top route needs a receiver",
    ),
    "top route with a matcher": (
        """\
        route:  # <-
          receiver: ops
          match: {street: 空港街道}
        receivers: [{name: ops, console: {}}]
        """,
        "route: the top route matches everything",
    ),
    "starttls and implicit tls": (
        """\
        route: {receiver: mail}
        receivers:
          - name: mail
            email:  # <-
              to: [duty@example.org]
              from: sw@example.org
              smarthost: smtp.example.org:587
              starttls: true
              tls: true
        """,
        "receivers.0.email: choose starttls (port 587) or tls",
    ),
    "smarthost without port": (
        """\
        route: {receiver: mail}
        receivers:
          - name: mail
            email:
              to: [duty@example.org]
              from: sw@example.org
              smarthost: smtp.example.org  # <-
        """,
        "receivers.0.email.smarthost: not host:port: 'smtp.example.org'",
    ),
    "webhook url not http": (
        """\
        route: {receiver: ops}
        receivers:
          - name: ops
            webhook:
              url: ftp://ops.example/hook  # <-
        """,
        "receivers.0.webhook.url: not an http:// or https:// URL",
    ),
    "every label and more": (
        """\
        route:
          receiver: ops
          group_by: ["...", street]  # <-
        receivers: [{name: ops, console: {}}]
        """,
        'route.group_by: "..." groups by every label and stands alone',
    ),
    "inhibit rule without target": (
        """\
        route: {receiver: ops}
        receivers: [{name: ops, console: {}}]
        inhibit_rules:
          - source_matchers: [kind=offline]  # <-
            equal: [station_id]
        """,
        "inhibit_rules.0: a rule needs source and target matchers",
    ),
    "inhibit matcher that is none": (
        """\
        route: {receiver: ops}
        receivers: [{name: ops, console: {}}]
        inhibit_rules:
          - source_matchers: [kind=offline]
            target_matchers:
              - "kind~stale"  # <-
        """,
        "inhibit_rules.0.target_matchers.0: not a matcher: 'kind~stale'",
    ),
    "YAML syntax error": (
        """\
        route:
          receiver: ops
          routes:
            - match: {street: 空港街道
        receivers: [{name: ops, console: {}}]  # <-
        """,
        "not YAML:",
    ),
    "key written twice": (
        """\
        route:
          receiver: ops
          group_wait: 30s
          group_wait: 1m  # <-
        receivers: [{name: ops, console: {}}]
        """,
        "route.group_wait: duplicate key (first at line 3)",
    ),
    "not a mapping": (
        """\
        - route  # <-
        """,
        "the top level must be a mapping",
    ),
}


@pytest.mark.parametrize(("text", "message"), BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_file_is_refused_naming_file_line_and_field(text: str, message: str) -> None:
    text = textwrap.dedent(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.endswith("# <-"))
    with pytest.raises(ConfigurationError) as caught:
        load_config_text(text, source="notify.yaml")
    assert f"notify.yaml:{line}: {message}" in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    text = textwrap.dedent(
        """\
        route:
          receiver: ops
          group_wait: soon
        receivers:
          - name: ops
            webhook: {url: nowhere}
        """
    )
    with pytest.raises(ConfigurationError) as caught:
        load_config_text(text, source="notify.yaml")
    assert str(caught.value).splitlines() == [
        "notify.yaml:3: route.group_wait: not a duration: 'soon'; write e.g. 30s, 5m, 4h or 1h30m",
        "notify.yaml:6: receivers.0.webhook.url: not an http:// or https:// URL",
    ]


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"notify.yaml: empty"):
        load_config_text("# nothing yet\n", source="notify.yaml")


def test_a_missing_file_is_refused_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "notify.yaml"
    with pytest.raises(ConfigurationError, match=r"notify\.yaml: cannot read"):
        load_config(missing)


def test_a_file_on_disk_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text("route: {receiver: nobody}\nreceivers: [{name: ops, console: {}}]\n")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    expected = f"{path}:1: route.receiver: no receiver named nobody; receivers: ops"
    assert str(caught.value) == expected


def test_no_receivers_is_refused() -> None:
    expected = r"notify\.yaml:2: receivers: at least one receiver"
    with pytest.raises(ConfigurationError, match=expected):
        load_config_text("route: {receiver: ops}\nreceivers: []\n", source="notify.yaml")
