"""The import's own checks before it reaches the database, and its progress display."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from stationwatch.registry.sheet_import import ImportRequest, _progress, run_import
from stationwatch.settings import Settings

# nothing listens here: a test that reached the database would fail, not pass
UNREACHABLE = Settings(
    database_url="postgresql://nobody@127.0.0.1:1/none", kafka="kafka://127.0.0.1:1"
)


def run(request: ImportRequest) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    code = run_import(UNREACHABLE, request, out=out.append, err=err.append, confirm=lambda _q: True)
    return code, out, err


def test_a_too_long_name_for_by_is_refused_first(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("编号\n", encoding="utf-8")
    code, out, err = run(ImportRequest(path, changed_by="王" * 65))
    assert (code, out) == (2, [])
    assert err == ["error: --by: give a name of 1 to 64 characters"]


def test_a_file_that_is_not_a_spreadsheet_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "a.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    code, _out, err = run(ImportRequest(path))
    assert code == 2
    assert err == [
        "error: a.xls: .xls workbooks are not read; save it as .xlsx or .csv (另存为 .xlsx 或 .csv)"
    ]


def test_the_progress_bar_shows_on_a_terminal_only() -> None:
    terminal = Console(file=io.StringIO(), force_terminal=True)
    piped = Console(file=io.StringIO(), force_terminal=False)
    assert not _progress(terminal).disable
    assert _progress(piped).disable
    with _progress(terminal) as progress:
        task = progress.add_task("checking", total=3)
        progress.advance(task, 3)
    assert "3/3" in terminal.file.getvalue()  # type: ignore[attr-defined]


def test_a_file_without_stations_is_refused(tmp_path: Path) -> None:
    """A header alone with --remove-missing would remove every station: never published."""
    path = tmp_path / "empty.csv"
    path.write_text("编号,名称,纬度,经度,开放时间\n,,,,\n", encoding="utf-8")
    code, out, err = run(ImportRequest(path, yes=True, remove_missing=True))
    assert (code, out) == (2, [])
    assert err == ["error: empty.csv: no stations below the header (表头下没有驿站)"]
