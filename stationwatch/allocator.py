"""Which memory allocator a worker runs with (``STATIONWATCH_ALLOCATOR``): jemalloc for every
object where the library is installed, else Python's own.

Why: a worker's heap grows in bursts (a batch of 4,000 records in flight beside the next
ones fetched, a registry load, a backlog) and shrinks again, while a few objects made during
the burst live on. Python's small-object allocator gives a 1 MiB arena back only when no
object is left in it, so those few keep most of the burst's arenas: measured at 150,000
stations after a registry load and 30 s at saturation, 78 arenas (78 MiB) held 39 MB of live
objects. glibc's malloc, given everything (``PYTHONMALLOC=malloc``), is no better: its free
memory lies in small pieces between live ones, and ``malloc_trim`` can return only whole
free pages. jemalloc keeps objects of one size class together and returns each page that
empties (``dirty_decay_ms``, by a background thread): the same worker held 147 to 155 MB
instead of 176 to 182 ten seconds after its saturation, at the same rate; in the bench, 148
and 152 MB instead of 179 under steady ingest (:data:`JEMALLOC_CONF`).

The choice has to be made before the interpreter starts (``LD_PRELOAD`` and
``PYTHONMALLOC``), so ``stationwatch worker`` runs itself again (``exec``, the same process)
with them set, once. The API server process it starts does not inherit them
(:func:`as_before_restart`).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import os
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Literal

from stationwatch.errors import ConfigurationError

Choice = Literal["auto", "jemalloc", "python"]
SETTING = "STATIONWATCH_ALLOCATOR"
# Pages a burst freed go back to the system within a quarter of a second, from jemalloc's
# own thread, and are not kept for reuse in between (muzzy). Measured in the bench at 150,000
# stations under steady ingest: 148 and 152 MB with 250 ms; 155 and 159 MB with 1 s; the same
# rates.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:250,muzzy_decay_ms:0"
# Set in the environment of the worker's second start (what the variables below were before
# it, as JSON): it is never started a third time.
RESTARTED = "STATIONWATCH_ALLOCATOR_RESTARTED"
_SET = ("LD_PRELOAD", "PYTHONMALLOC", "MALLOC_CONF")  # by a restart
_MAPS = Path("/proc/self/maps")
JEMALLOC_MISSING = (
    f"{SETTING}=jemalloc, but no jemalloc library is installed "
    f"(Debian and Ubuntu: apt install libjemalloc2; or {SETTING}=auto)"
)
_not_restarted = ""  # why an attempt to start again failed (for describe)


@cache
def find_jemalloc() -> str | None:
    """The jemalloc library's name as the dynamic loader finds it (``libjemalloc.so.2``), or
    None where it is not installed, or where preloading it cannot be seen to work (Linux
    only: ``LD_PRELOAD``, and ``/proc`` to see the library loaded)."""
    if not sys.platform.startswith("linux") or not _MAPS.exists():
        return None
    return ctypes.util.find_library("jemalloc")


def jemalloc_loaded(maps: Path = _MAPS) -> bool:
    """Whether jemalloc is mapped into this process (or the one whose ``maps`` these are);
    False where that cannot be read."""
    try:
        return "libjemalloc" in maps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def restart_env(
    choice: Choice, environ: Mapping[str, str], library: str | None, *, loaded: bool
) -> dict[str, str] | None:
    """The environment to start the worker again in, so that it runs with jemalloc; None to
    go on as it is: jemalloc is in use already (``loaded``: mapped, with Python's objects
    given to it), not asked for, not installed (``library``: None) with ``auto``, or the
    worker was started again once already. Raises :class:`ConfigurationError` when
    ``jemalloc`` is asked for and not installed, or did not load when started again."""
    if choice == "python" or in_use(environ, loaded=loaded) == "jemalloc":
        return None
    if environ.get(RESTARTED):
        if choice == "jemalloc":
            raise ConfigurationError(
                f"{SETTING}=jemalloc, but jemalloc did not load when the worker started again "
                "with it (LD_PRELOAD ignored?)"
            )
        return None
    preload = environ.get("LD_PRELOAD", "")
    if not loaded:  # preloaded (by the user) without Python's objects: only PYTHONMALLOC
        if library is None:
            if choice == "jemalloc":
                raise ConfigurationError(JEMALLOC_MISSING)
            return None
        preload = " ".join(p for p in (library, preload) if p)
    before = {name: environ.get(name) for name in _SET}
    return {
        **environ,
        "LD_PRELOAD": preload,
        "PYTHONMALLOC": "malloc",
        "MALLOC_CONF": environ.get("MALLOC_CONF") or JEMALLOC_CONF,
        RESTARTED: json.dumps(before),  # what they were: for the processes it starts
    }


def as_before_restart(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with the variables :func:`restart_env` set as they were before: for a
    process the worker starts (its API server keeps Python's allocator: under jemalloc it
    held 14 MB more at 150,000 stations, 319 MB instead of 305)."""
    if not environ.get(RESTARTED):
        return dict(environ)
    env = {k: v for k, v in environ.items() if k != RESTARTED}
    try:
        before = json.loads(environ[RESTARTED])
    except ValueError:
        before = None
    if not isinstance(before, dict):  # not set by a restart
        return env
    for name in _SET:
        value = before.get(name)
        if isinstance(value, str):
            env[name] = value
        else:
            env.pop(name, None)
    return env


def in_use(environ: Mapping[str, str], *, loaded: bool) -> str:
    """The allocator of a process with this environment, and jemalloc ``loaded`` or not:
    ``jemalloc`` for every object, else ``python``."""
    if loaded and environ.get("PYTHONMALLOC") == "malloc":
        return "jemalloc"
    return "python"


def process_allocator(pid: int) -> str:
    """The allocator another process runs with, read off it (:func:`in_use`); ``unknown``
    where its environment cannot be read."""
    proc = Path(f"/proc/{pid}")
    try:
        raw = (proc / "environ").read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return "unknown"
    environ = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    return in_use(environ, loaded=jemalloc_loaded(proc / "maps"))


def _this_command(argv: list[str]) -> bool:
    """Whether this program is ``stationwatch worker`` (the process's own command line ends
    with its arguments): not a program that runs the command line in-process, such as a
    test, which starting again would start as a whole."""
    return argv[1:2] == ["worker"] and sys.orig_argv[-len(argv) + 1 :] == argv[1:]


def use_chosen_allocator(choice: Choice, argv: list[str] | None = None) -> None:
    """Start this command again with jemalloc when ``choice`` and the system allow it (does
    not return then); else return at once. Call before anything else is done."""
    global _not_restarted
    argv = sys.argv if argv is None else argv
    if choice == "python" or not _this_command(argv):
        return
    if sys.flags.ignore_environment:  # python -E or -I: PYTHONMALLOC would not be read
        if choice == "jemalloc":
            raise ConfigurationError(f"{SETTING}=jemalloc needs the environment (not python -E)")
        _not_restarted = "python -E ignores PYTHONMALLOC"
        return
    loaded = jemalloc_loaded()
    library = None if loaded else find_jemalloc()
    env = restart_env(choice, os.environ, library, loaded=loaded)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)  # noqa: S606 - this command, with jemalloc
    except OSError as exc:
        if choice == "jemalloc":
            raise ConfigurationError(
                f"cannot start the worker again with jemalloc: {exc}"
            ) from None
        _not_restarted = f"starting again failed: {exc}"


def restart_early(argv: list[str], *, entry: bool) -> None:
    """At the top of the command line's module (``entry``: run as the program), before its
    imports, for ``stationwatch worker`` only: :func:`use_chosen_allocator` by
    ``STATIONWATCH_ALLOCATOR`` as the environment gives it, so that starting again costs only
    the interpreter's start (the command line's imports take 0.3 s, and a restarted worker is
    to judge again within 10 s). A value the settings refuse, or jemalloc asked for and not
    available, is left to the command to say."""
    names = [k for k in os.environ if k.upper() == SETTING]  # as the settings read it
    choice = os.environ[names[-1]] if names else "auto"
    if not entry or argv[1:2] != ["worker"] or choice not in ("auto", "jemalloc"):
        return
    with contextlib.suppress(ConfigurationError):
        use_chosen_allocator(choice, argv)  # type: ignore[arg-type] # one of the two


def describe(choice: Choice) -> str:
    """One log line: the allocator this process runs with, and why."""
    environ = {} if sys.flags.ignore_environment else os.environ  # as Python read it
    if environ.get("PYTHONMALLOC") == "malloc":
        if in_use(environ, loaded=jemalloc_loaded()) == "jemalloc":
            conf = environ.get("MALLOC_CONF", "")
            return f"memory allocator: jemalloc, for every object (MALLOC_CONF={conf})"
        return "memory allocator: the C library's malloc, for every object (jemalloc did not load)"
    if choice == "python":
        why = f"{SETTING}=python"
    elif _not_restarted:
        why = _not_restarted
    elif find_jemalloc() is None:
        why = "no jemalloc library installed (Debian and Ubuntu: libjemalloc2)"
    else:
        why = "not started as `stationwatch worker`"
    return f"memory allocator: Python's own, with the C library's malloc ({why})"
