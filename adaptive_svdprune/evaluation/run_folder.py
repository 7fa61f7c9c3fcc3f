"""The output folder of an evaluation: one writer at a time (a lock file that names it) and a settings
fingerprint (``run.json``) that decides whether its predictions may be resumed.

Resume policy: a run reuses the records of ``predictions.jsonl`` only when ``run.json`` holds the same
fingerprint (model, dtype/precision, task, data folder, split, prompt protocol, method and selector settings,
generation length, fidelity); ``limit`` and ``batch_size`` are not part of it, so a longer run extends a
shorter one. Otherwise the run stops with one error naming every setting that differs; the user picks another
``out`` or passes ``overwrite`` to discard the old predictions.

The lock is ``<out>/.lock``: ``flock``-ed while the run holds it (released by the kernel if the process dies)
and holding ``{"pid", "host", "started"}`` so a refused writer learns who holds it. A lock file left by a
process that is gone is taken over with a warning.

Example:
    >>> import os, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with OutputLock(folder):
    ...     try:
    ...         OutputLock(folder).acquire()
    ...     except OutputLockedError as err:
    ...         print(type(err).__name__, f"pid {os.getpid()}" in str(err))
    OutputLockedError True
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

from adaptive_svdprune.evaluation.predictions import strict_json, write_json

try:  # POSIX; elsewhere the lock falls back to exclusive creation
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["OutputLock", "OutputLockedError", "ResumeMismatchError", "check_resume", "fingerprint_id",
           "is_global_zero"]

LOCK_NAME = ".lock"
RUN_NAME = "run.json"


class OutputLockedError(ValueError):
    """Another live process is writing to the same output folder."""


class ResumeMismatchError(ValueError):
    """The output folder holds predictions written with other settings."""


def is_global_zero() -> bool:
    """True unless this process is a non-zero rank of a distributed run (Lightning's environment variables).

    Example:
        >>> import os
        >>> is_global_zero() == (os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("RANK", "0") == "0")
        True
    """
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank() == 0
    except ImportError:  # pragma: no cover
        pass
    return all(os.environ.get(k, "0") in ("", "0") for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _describe(holder: dict[str, Any]) -> str:
    return f"pid {holder.get('pid')} on host {holder.get('host')} (started {holder.get('started')})"


class OutputLock:
    """Exclusive writer lock on an output folder; a context manager.

    Args:
        folder: the output folder (created if missing).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def _holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _refuse(self, holder: dict[str, Any]) -> OutputLockedError:
        who = _describe(holder) if holder else "another process"
        return OutputLockedError(f"output folder {self.folder} is in use by {who}: lock file {self.path}; "
                                 f"wait for it, or use another out folder (delete the lock file only if that "
                                 f"process is gone)")

    def acquire(self) -> OutputLock:
        """Take the lock, or raise :class:`OutputLockedError` naming its holder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        if fcntl is None:  # pragma: no cover
            return self._acquire_exclusive(me)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._refuse(self._holder()) from None
            try:  # the holder before us may have removed the file between our open and our flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = self._holder()
        if previous:
            same_host = previous.get("host") == me["host"]
            pid = previous.get("pid")
            if same_host and isinstance(pid, int) and pid != me["pid"] and _pid_alive(pid):
                # a live writer without a working flock (e.g. a file system that ignores it): refuse
                os.close(fd)
                raise self._refuse(previous)
            warnings.warn(f"taking over the stale lock {self.path} of {_describe(previous)}: that process is gone",
                          stacklevel=2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        self._fd = fd
        return self

    def _acquire_exclusive(self, me: dict[str, Any]) -> OutputLock:  # pragma: no cover (non-POSIX)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid = holder.get("pid")
                if holder.get("host") == me["host"] and isinstance(pid, int) and not _pid_alive(pid):
                    warnings.warn(f"taking over the stale lock {self.path} of {_describe(holder)}: that process "
                                  f"is gone", stacklevel=3)
                    self.path.unlink(missing_ok=True)
                    continue
                raise self._refuse(holder) from None
            os.write(fd, (json.dumps(me) + "\n").encode())
            self._fd = fd
            return self
        raise self._refuse(self._holder())

    def release(self) -> None:
        """Remove the lock file and drop the lock (unlink first, so no one locks a file about to vanish)."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """A short stable hash of a fingerprint (stored in every record as ``run``).

    Example:
        >>> fingerprint_id({"a": 1}) == fingerprint_id({"a": 1}) != fingerprint_id({"a": 2})
        True
    """
    return hashlib.sha1(strict_json(fingerprint, sort_keys=True).encode()).hexdigest()[:12]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    return [f"{k} {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in sorted(set(a) | set(b))
            if a.get(k, "<absent>") != b.get(k, "<absent>")]


def check_resume(folder: Path, fingerprint: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Refuse to resume from ``records`` unless they were written with ``fingerprint``; record it in run.json.

    Raises:
        ResumeMismatchError: naming every setting that differs (or the records without a fingerprint).
    """
    run_file = folder / RUN_NAME
    hint = "use another out folder (--out), or --overwrite to discard them"
    run_id = fingerprint_id(fingerprint)
    stored: dict[str, Any] | None = None
    if run_file.exists():
        try:
            stored = json.loads(run_file.read_text())
        except json.JSONDecodeError as err:
            raise ResumeMismatchError(f"{run_file} is not valid JSON ({err}); cannot tell how the predictions in "
                                      f"{folder} were made: {hint}") from None
    if stored is not None and stored.get("fingerprint") != fingerprint:
        diff = "; ".join(_differences(stored.get("fingerprint") or {}, fingerprint))
        raise ResumeMismatchError(f"cannot resume in {folder}: its predictions were made with other settings "
                                  f"({diff}); {hint}")
    foreign = [r for r in records if r.get("run") != run_id]
    if foreign:
        source = "no run.json" if stored is None else f"run.json matches but {len(foreign)} records do not"
        raise ResumeMismatchError(f"cannot resume in {folder}: {len(foreign)} of {len(records)} predictions have "
                                  f"no matching settings fingerprint ({source}; written by an older version or "
                                  f"another run); {hint}")
    if stored is None:
        write_json(run_file, {"run": run_id, "fingerprint": fingerprint})
