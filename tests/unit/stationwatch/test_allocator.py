"""The worker's choice of memory allocator: when it starts itself again with jemalloc, and with
what environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stationwatch import allocator
from stationwatch.allocator import (
    JEMALLOC_CONF,
    RESTARTED,
    as_before_restart,
    in_use,
    restart_env,
)
from stationwatch.errors import ConfigurationError

LIB = "libjemalloc.so.2"


def test_auto_starts_again_with_jemalloc_for_every_object() -> None:
    env = restart_env("auto", {"PATH": "/bin"}, LIB, loaded=False)
    assert env is not None
    assert {k: v for k, v in env.items() if k != RESTARTED} == {
        "PATH": "/bin",
        "LD_PRELOAD": LIB,
        "PYTHONMALLOC": "malloc",
        "MALLOC_CONF": JEMALLOC_CONF,
    }
    assert env[RESTARTED]


@pytest.mark.parametrize(
    "environ",
    [{"PATH": "/bin"}, {"PATH": "/bin", "LD_PRELOAD": "/opt/trace.so", "MALLOC_CONF": "x"}],
)
def test_processes_the_worker_starts_get_the_environment_before_its_restart(
    environ: dict[str, str],
) -> None:
    env = restart_env("auto", environ, LIB, loaded=False)
    assert env is not None
    assert as_before_restart({**env, "STATIONWATCH_WEB_PORT": "1"}) == {
        **environ,
        "STATIONWATCH_WEB_PORT": "1",
    }
    assert as_before_restart(environ) == environ  # never restarted: as it is


def test_a_users_preload_and_jemalloc_settings_are_kept() -> None:
    environ = {"LD_PRELOAD": "/opt/trace.so", "MALLOC_CONF": "narenas:1"}
    env = restart_env("jemalloc", environ, LIB, loaded=False)
    assert env is not None
    assert env["LD_PRELOAD"] == f"{LIB} /opt/trace.so"
    assert env["MALLOC_CONF"] == "narenas:1"


def test_jemalloc_preloaded_by_the_user_gets_pythons_objects_too() -> None:
    environ = {"LD_PRELOAD": f"/usr/lib/{LIB}"}
    env = restart_env("auto", environ, LIB, loaded=True)
    assert env is not None
    assert env["LD_PRELOAD"] == f"/usr/lib/{LIB}"  # not loaded twice
    assert env["PYTHONMALLOC"] == "malloc"


@pytest.mark.parametrize(
    ("choice", "environ", "library", "loaded"),
    [
        ("python", {}, LIB, False),  # asked for Python's own
        ("auto", {"PYTHONMALLOC": "malloc"}, LIB, True),  # in use already
        ("jemalloc", {"PYTHONMALLOC": "malloc"}, LIB, True),
        ("auto", {}, None, False),  # not installed: as before
        ("auto", {RESTARTED: "{}"}, LIB, False),  # started again once, and it did not load
    ],
)
def test_goes_on_as_it_is(
    choice: allocator.Choice, environ: dict[str, str], library: str | None, loaded: bool
) -> None:
    assert restart_env(choice, environ, library, loaded=loaded) is None


def test_jemalloc_asked_for_and_missing_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="apt install libjemalloc2"):
        restart_env("jemalloc", {}, None, loaded=False)


def test_in_use_needs_both_the_library_and_pythons_objects() -> None:
    assert in_use({"PYTHONMALLOC": "malloc"}, loaded=True) == "jemalloc"
    assert in_use({}, loaded=True) == "python"
    assert in_use({"PYTHONMALLOC": "malloc"}, loaded=False) == "python"


def test_loaded_reads_the_process_map(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libjemalloc.so.2\n")
    assert allocator.jemalloc_loaded(maps)
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert not allocator.jemalloc_loaded(maps)
    assert not allocator.jemalloc_loaded(tmp_path / "missing")


RESTARTS = """
import os, sys
from stationwatch.allocator import describe, jemalloc_loaded, use_chosen_allocator
print("start", os.environ.get("STATIONWATCH_ALLOCATOR_RESTARTED") is not None, flush=True)
use_chosen_allocator("auto")
print(jemalloc_loaded(), os.environ.get("PYTHONMALLOC"), os.getpid())
print(describe("auto"))
"""


def run_python(code: str, argument: str) -> subprocess.CompletedProcess[str]:
    """``python -c CODE ARGUMENT`` in a bare environment, its output as text."""
    command = [sys.executable, "-c", code, argument]
    env = {"PATH": "/bin"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=True)


LINUX_JEMALLOC = pytest.mark.skipif(
    allocator.find_jemalloc() is None, reason="no jemalloc library, or not Linux"
)


@LINUX_JEMALLOC
def test_a_process_starts_itself_again_once_with_jemalloc() -> None:
    done = run_python(RESTARTS, "worker")  # as `stationwatch worker` would be
    lines = done.stdout.splitlines()
    assert lines[:2] == ["start False", "start True"]  # started twice, not more
    loaded, malloc, _ = lines[2].split()
    assert (loaded, malloc) == ("True", "malloc")
    assert lines[3].startswith("memory allocator: jemalloc, for every object")


@LINUX_JEMALLOC
def test_a_program_running_the_command_in_process_is_not_started_again() -> None:
    done = run_python(RESTARTS, "--not-worker")
    lines = done.stdout.splitlines()
    assert lines[0] == "start False"
    assert lines[1].split()[1] == "None"  # no PYTHONMALLOC
    assert "(not started as `stationwatch worker`)" in lines[2]


EARLY = """
import os, sys
sys.argv = ["/usr/bin/stationwatch", "worker"]  # as the console script runs it
import stationwatch.cli
print(os.environ.get("STATIONWATCH_ALLOCATOR_RESTARTED") is not None)
"""


@LINUX_JEMALLOC
def test_the_command_line_starts_the_worker_again_as_it_is_imported() -> None:
    done = run_python(EARLY, "worker")
    assert done.stdout.split() == ["True"]  # before the command ran: at its import


def test_a_marker_set_by_hand_leaves_the_rest_as_it_is() -> None:
    env = {"PATH": "/bin", "PYTHONMALLOC": "malloc", RESTARTED: "1"}
    assert as_before_restart(env) == {"PATH": "/bin", "PYTHONMALLOC": "malloc"}


@pytest.mark.parametrize(
    ("argv", "entry", "setting", "restarts"),
    [
        (["stationwatch", "worker"], True, None, True),
        (["stationwatch", "worker"], True, "jemalloc", True),
        (["stationwatch", "worker"], False, None, False),  # imported, not run
        (["stationwatch", "notifier"], True, None, False),  # the worker only
        (["stationwatch", "worker"], True, "python", False),
        (["stationwatch", "worker"], True, "tcmalloc", False),  # the settings say what is wrong
    ],
)
def test_the_command_line_restarts_early_for_the_worker_only(
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    entry: bool,
    setting: str | None,
    restarts: bool,
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(
        allocator, "use_chosen_allocator", lambda choice, _argv=None: asked.append(choice)
    )
    if setting is None:
        monkeypatch.delenv("STATIONWATCH_ALLOCATOR", raising=False)
    else:
        monkeypatch.setenv("STATIONWATCH_ALLOCATOR", setting)
    allocator.restart_early(argv, entry=entry)
    assert asked == ([setting or "auto"] if restarts else [])


def test_jemalloc_missing_early_is_left_to_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATIONWATCH_ALLOCATOR", "jemalloc")
    monkeypatch.setattr(allocator, "find_jemalloc", lambda: None)
    monkeypatch.setattr(allocator, "jemalloc_loaded", lambda: False)
    monkeypatch.setattr(allocator, "_this_command", lambda argv: True)
    allocator.restart_early(["stationwatch", "worker"], entry=True)  # no error here
    with pytest.raises(ConfigurationError):
        allocator.use_chosen_allocator("jemalloc")
