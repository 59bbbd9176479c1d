"""`stationwatch simulate`'s command line: every mistake is one line on stderr and exit code 2,
and --help tells the truth about the defaults and rates."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from stationwatch.cli import main


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """``stationwatch ARGS…`` in this process: (exit code, stdout, stderr)."""

    def running(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["stationwatch", *args])
        with pytest.raises(SystemExit) as stopped:
            main()
        out, err = capsys.readouterr()
        code = stopped.value.code
        return code if isinstance(code, int) else 1, out, err

    return running


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--stations", "0"), "'--stations'"),
        (("--stations", "200001"), "'--stations'"),
        (("--speed", "0"), "--speed: 0.0 must be above 0"),
        (("--speed", "-3"), "--speed"),
        (("--start", "yesterday"), "--start: 'yesterday' is not a time"),
        (("--duplicate-rate", "1.5"), "'--duplicate-rate'"),
        (("--power-cut-rate", "-1"), "'--power-cut-rate'"),
        (("--seed", "x"), "'--seed'"),
        (("--bogus",), "No such option: --bogus"),
    ],
)
def test_every_mistake_is_one_line_and_exit_code_2(
    run: Callable[..., tuple[int, str, str]], args: tuple[str, ...], says: str
) -> None:
    code, out, err = run("simulate", *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert says in lines[0]


def test_a_missing_command_or_argument_elsewhere_is_one_line_too(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    for args in (("nosuch",), ("stations", "import")):
        code, _out, err = run(*args)
        assert code == 2
        assert len(err.strip().splitlines()) == 1, err


def test_help_names_every_fault_with_its_unit_and_the_seed_district(
    run: Callable[..., tuple[int, str, str]],
) -> None:
    code, out, _err = run("simulate", "--help")
    assert code == 0
    text = " ".join(out.split())
    for option in (
        "--outage-rate", "--death-rate", "--flap-rate", "--power-cut-rate", "--clock-skew-rate",
        "--clock-skew-s", "--manual-close-rate", "--late-close-rate", "--duplicate-rate",
        "--reorder-rate", "--malformed-rate", "--seed", "--speed", "--start",
    ):  # fmt: skip
        assert option in text
    assert "1,419" in text
    assert "STATIONWATCH_MAX_CLOCK_SKEW_S" in text
