"""Checks every command runs *before* its work starts: output paths, ports, devices and model sources.

A search that runs for an hour and then cannot write its results, or a generate call that retries the hub
for half a minute while offline, wastes the user's time; these helpers fail in the first second with one line
that names the flag and the value. They raise ``ValueError``/``OSError`` subclasses that the CLI's error
boundary (:mod:`adaptive_svdprune.cli`) prints as ``adaptive-svdprune <command>: error: ...``.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     check_writable_dir(Path(d) / "new" / "out", "--out").name
    'out'
    >>> with tempfile.NamedTemporaryFile() as f:
    ...     check_writable_dir(f.name, "--out")
    Traceback (most recent call last):
    ...
    NotADirectoryError: --out ... is a file, not a folder
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

__all__ = [
    "UserError",
    "check_device",
    "check_model_source",
    "check_port_free",
    "check_writable_dir",
    "check_writable_file",
]


class UserError(Exception):
    """A problem with the user's input or environment: printed as one line, never with a traceback."""


def _existing_ancestor(path: Path) -> Path:
    for parent in (path, *path.parents):
        if parent.exists():
            return parent
    return Path.cwd()


def _probe_dir(folder: Path, flag: str, target: Path) -> None:
    """Create-and-delete a file in ``folder`` (permissions, read-only mounts, full quotas all show up here)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise PermissionError(f"{flag} {str(target)!r}: cannot write in {str(folder)!r} ({err.strerror})") from None


def check_writable_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """``path`` is (or can become) a folder this process can write in; returns it as a ``Path``.

    Nothing is created: a missing folder is checked through its nearest existing ancestor.

    Raises:
        NotADirectoryError: ``path`` or one of its parents is a file.
        PermissionError: the folder (or the ancestor it would be created in) is not writable.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{flag} {str(path)!r} is a file, not a folder")
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise NotADirectoryError(f"{flag} {str(path)!r}: {str(base)!r} is a file, not a folder")
    _probe_dir(base, flag, path)
    return path


def check_writable_file(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """``path`` can be written as a file (its folder writable or creatable, and it is not a folder).

    Raises:
        IsADirectoryError: ``path`` is a folder.
        NotADirectoryError: a parent of ``path`` is a file.
        PermissionError: the file or its folder is not writable.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{flag} {str(path)!r} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{flag} {str(path)!r} is not writable")
    check_writable_dir(path.parent if str(path.parent) else Path("."), flag)
    return path


def check_port_free(port: int | None, flag: str = "--port", pairs: bool = False) -> None:
    """``port`` (and ``port + 1`` when ``pairs``) can be bound on localhost now; ``None`` passes.

    Raises:
        ValueError: out of range, or another process listens there.
    """
    if port is None:
        return
    if not 1 <= port <= 65535 - int(pairs):
        raise ValueError(f"{flag} must be in 1..{65535 - int(pairs)}, got {port}")
    for candidate in (port, port + 1) if pairs else (port,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("localhost", candidate))
            except OSError:
                raise ValueError(f"{flag} {port}: port {candidate} is busy (another process listens on it); "
                                 "choose another port or leave it out for a free one") from None


def check_device(device: str | None, flag: str = "--device") -> None:
    """A torch device string that exists on this machine; ``None`` and ``"cpu"`` always pass.

    Raises:
        ValueError: not a device string, or CUDA/MPS asked for where there is none.
    """
    if device is None or device == "cpu":
        return
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{flag} {device!r} is not a torch device ({err})") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{flag} {device!r}: CUDA is not available here (torch {torch.__version__}, "
                             "no CUDA device or a CPU build); use --device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"{flag} {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{flag} {device!r}: MPS is not available here; use --device cpu")


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", endpoint.port or 443), timeout_s):
            return True
    except OSError:
        return False


def _offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model_source(name: str, flag: str = "--model") -> None:
    """A model a command can load without waiting: a short name, a checkpoint folder, or a reachable hub id.

    Hub ids not in the local Hugging Face cache fail at once when ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``
    is set or the hub does not answer within 3 s (instead of half a minute of retries and a traceback).

    Raises:
        FileNotFoundError: a path that does not exist, or a folder without ``config.json``.
        ValueError: neither a folder nor a valid hub id.
        ConnectionError: a hub id that is not cached while offline.
    """
    from adaptive_svdprune.models.names import MODEL_NAMES, model_names_help

    if name in MODEL_NAMES:
        return
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{flag} {name!r}: the folder has no config.json (not a saved checkpoint)")
        return
    looks_like_path = path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1
    if looks_like_path or path.exists():
        raise FileNotFoundError(f"{flag} {name!r}: no such model folder (names: {model_names_help()}; "
                                "or a hub id like llava-hf/llava-1.5-7b-hf)")
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except HFValidationError:
        raise ValueError(f"{flag} {name!r} is neither a model folder nor a hub id (names: "
                         f"{model_names_help()})") from None
    if isinstance(cached, str):
        return
    if _offline():
        raise ConnectionError(f"{flag} {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
                              "download it first (unset HF_HUB_OFFLINE) or pass a local folder")
    if not _hub_reachable():
        raise ConnectionError(f"{flag} {name!r} is not in the local Hugging Face cache and the hub cannot be "
                              "reached (no network?): download it where there is network, or pass a local folder")
