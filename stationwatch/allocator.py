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
to 159 MB instead of 179 under steady ingest.

The choice has to be made before the interpreter starts (``LD_PRELOAD`` and
``PYTHONMALLOC``), so ``stationwatch worker`` runs itself again (``exec``, the same process)
with them set, once. The API server process it starts does not inherit them
(:func:`as_before_restart`).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import json
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from stationwatch.errors import ConfigurationError

logger = logging.getLogger(__name__)

Choice = Literal["auto", "jemalloc", "python"]
ENV_NAME = "ALLOCATOR"  # the setting (STATIONWATCH_ALLOCATOR)
# Pages a burst freed go back to the system within a quarter of a second, from jemalloc's
# own thread, and are not kept for reuse in between (muzzy). Measured in the bench at 150,000
# stations: 148 MB under steady ingest with 250 ms, 155 and 159 MB with 1 s; the same rates.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:250,muzzy_decay_ms:0"
# Set in the environment of the worker's second start: it is never started a third time.
RESTARTED = "STATIONWATCH_ALLOCATOR_RESTARTED"
_SET = ("LD_PRELOAD", "PYTHONMALLOC", "MALLOC_CONF")  # by a restart
JEMALLOC_MISSING = (
    "STATIONWATCH_ALLOCATOR=jemalloc, but no jemalloc library is installed "
    "(Debian and Ubuntu: apt install libjemalloc2; or STATIONWATCH_ALLOCATOR=auto)"
)


def find_jemalloc() -> str | None:
    """The jemalloc library's name as the dynamic loader finds it (``libjemalloc.so.2``), or
    None where it is not installed."""
    return ctypes.util.find_library("jemalloc")


def jemalloc_loaded(maps: Path = Path("/proc/self/maps")) -> bool:
    """Whether jemalloc is mapped into this process (Linux; False elsewhere)."""
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
    ``jemalloc`` is asked for and not installed."""
    if choice == "python":
        return None
    if loaded and environ.get("PYTHONMALLOC") == "malloc":
        return None
    if library is None:
        if choice == "jemalloc":
            raise ConfigurationError(JEMALLOC_MISSING)
        return None
    if environ.get(RESTARTED):
        return None
    preload = environ.get("LD_PRELOAD", "")
    if not loaded:  # preloaded but Python's objects not given to it: only PYTHONMALLOC
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
    before: dict[str, str | None] = json.loads(environ[RESTARTED])
    env = {k: v for k, v in environ.items() if k != RESTARTED and k not in before}
    env.update({k: v for k, v in before.items() if v is not None})
    return env


def in_use(environ: Mapping[str, str], *, loaded: bool) -> str:
    """The allocator of this process, as the worker's log and the bench name it."""
    if loaded and environ.get("PYTHONMALLOC") == "malloc":
        return "jemalloc"
    return "python"


def use_chosen_allocator(choice: Choice) -> None:
    """Start this command again with jemalloc when ``choice`` and the system allow it (does
    not return then); else return at once. Call before anything else is done."""
    environ = dict(os.environ)
    loaded = jemalloc_loaded()
    env = restart_env(choice, environ, find_jemalloc(), loaded=loaded)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)  # noqa: S606 - this command, with jemalloc


def restart_early(argv: list[str], *, entry: bool) -> None:
    """At the top of the command line's module (``entry``: run as the program), before its
    imports, for ``stationwatch worker`` only: :func:`use_chosen_allocator` by
    ``STATIONWATCH_ALLOCATOR`` as the environment gives it, so that starting again costs only
    the interpreter's start (the command line's imports take 0.3 s, and a restarted worker is
    to judge again within 10 s). A value the settings refuse, or jemalloc asked for and not
    installed, is left to the command to say."""
    choice = os.environ.get(f"STATIONWATCH_{ENV_NAME}", "auto")
    if not entry or argv[1:2] != ["worker"] or choice not in ("auto", "jemalloc"):
        return
    with contextlib.suppress(ConfigurationError):
        use_chosen_allocator(choice)  # type: ignore[arg-type] # one of the two


def describe(choice: Choice) -> str:
    """One log line: the allocator this process runs with, and why."""
    environ, loaded = os.environ, jemalloc_loaded()
    if in_use(environ, loaded=loaded) == "jemalloc":
        conf = environ.get("MALLOC_CONF", "")
        return f"memory allocator: jemalloc, for every object (MALLOC_CONF={conf})"
    if choice == "python":
        why = "STATIONWATCH_ALLOCATOR=python"
    elif environ.get(RESTARTED):
        why = "jemalloc did not load (LD_PRELOAD ignored?)"
    else:
        why = "no jemalloc library installed (Debian and Ubuntu: libjemalloc2)"
    return f"memory allocator: Python's own, with the C library's malloc ({why})"
