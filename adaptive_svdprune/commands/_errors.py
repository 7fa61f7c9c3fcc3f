"""Which exceptions are the user's to fix, and the one line that says so (the CLI's error boundary).

A user error is bad input or a bad environment: a missing or unwritable file, a broken image, a YAML syntax
error, a model that is neither a folder nor a reachable hub id, a busy port, a device that is not there, a
Lightning or NNI configuration the libraries refuse. Anything else is a bug of ours and is reported as an
internal error with a pointer to ``--debug``.

Example:
    >>> user_error_message(FileNotFoundError(2, "No such file or directory", "q.json"))
    "No such file or directory: 'q.json'"
    >>> user_error_message(ZeroDivisionError("division by zero")) is None
    True
"""

from __future__ import annotations

import re

__all__ = ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_USER", "internal_error_message", "user_error_message"]

EXIT_USER = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
_MAX_CHARS = 600
#: Library messages that mean a user error even though their type is generic (RuntimeError, AssertionError).
_USER_PATTERNS: tuple[tuple[str, str | None], ...] = (
    (r"Torch not compiled with CUDA enabled|Found no NVIDIA driver|CUDA driver initialization failed",
     "CUDA is not available on this machine; use --device cpu"),
    (r"is not idle", "the port is busy (another process listens on it); choose another --port"),
    (r"Repo id must be in the form", "the model is neither an existing checkpoint folder nor a valid hub id "
                                     "(org/name)"),
    (r"We couldn't connect to 'https://huggingface.co'", "the model is not in the local Hugging Face cache and "
                                                          "the hub cannot be reached (offline?)"),
)


def _one_line(text: str) -> str:
    text = re.sub(r"\s*\n\s*", "; ", text.strip())
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 3] + "..."


def _library_user_errors() -> tuple[type[BaseException], ...]:
    """User-error types of optional libraries, those that are importable (cheaply: already imported ones)."""
    import sys

    found: list[type[BaseException]] = []
    for module, name in (("yaml", "YAMLError"),
                         ("lightning.fabric.utilities.exceptions", "MisconfigurationException")):
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _os_message(err: OSError) -> str:
    if err.strerror and err.filename is not None and str(err).startswith("[Errno"):
        extra = f" -> {err.filename2!r}" if err.filename2 is not None else ""
        return f"{err.strerror}: {str(err.filename)!r}{extra}"
    return str(err) or type(err).__name__


def _raised_explicitly(err: BaseException) -> bool:
    """Whether ``err`` came from a ``raise`` statement (a check's message) rather than from the interpreter.

    ``TypeError``/``KeyError`` are what config checks raise for a value of the wrong type or a missing key, but
    also what a bug produces (``f() takes 2 positional arguments``); only the former are the user's to fix.
    """
    import traceback

    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and (frames[-1].line or "").lstrip().startswith("raise")


def user_error_message(err: BaseException) -> str | None:
    """The one-line message of a user error, or ``None`` when ``err`` is an internal error (a bug)."""
    from adaptive_svdprune.commands._checks import UserError

    text = str(err)
    for pattern, meaning in _USER_PATTERNS:
        if re.search(pattern, text):
            first = _one_line(text).split("; ")[0]
            return _one_line(f"{meaning} ({first})" if meaning else first)
    if isinstance(err, OSError):  # FileNotFoundError, PermissionError, PIL's UnidentifiedImageError, hub errors
        return _one_line(_os_message(err))
    if isinstance(err, (KeyError, TypeError)) and not _raised_explicitly(err):
        return None  # the interpreter's own: a bug (wrong call, missing dict key), not bad input
    if isinstance(err, KeyError):
        return _one_line(f"missing key {err.args[0]!r}" if len(err.args) == 1 else text)
    if isinstance(err, (UserError, ValueError, TypeError, *_library_user_errors())):
        return _one_line(text or type(err).__name__)
    return None


def internal_error_message(err: BaseException) -> str:
    """One line for an unexpected error: its type and message, and how to see the traceback."""
    return _one_line(f"internal error: {type(err).__name__}: {err}") + " (rerun with --debug for the traceback)"
