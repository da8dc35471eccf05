"""Atomic writes: every file a long job produces appears whole or not at all."""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed onto `path` (same filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the mode a plain open() would
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fault_pause_before_rename(path)  # test-only; a no-op unless SYNTFER_FAULT_RENAME_PAUSE is set
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


_RENAMES: dict[str, int] = {}


def _fault_pause_before_rename(path: Path) -> None:
    """Test-only fault hook (tests/test_faults_more.py sets it; nothing else does): with the environment variable
    ``SYNTFER_FAULT_RENAME_PAUSE=<name>:<k>:<marker>``, the k-th atomic write of a file named <name> (``*``: of
    any file) in this process, its temporary complete and closed, creates the file <marker> and sleeps, so that
    the test's SIGKILL lands between the write and the rename. Unset, it returns at once."""
    spec = os.environ.get("SYNTFER_FAULT_RENAME_PAUSE")
    if not spec:
        return
    name, k, marker = spec.split(":", 2)
    if name in ("*", path.name):
        _RENAMES[name] = _RENAMES.get(name, 0) + 1
        if _RENAMES[name] == int(k):
            Path(marker).touch()
            import time  # lazy: only the fault test gets here

            time.sleep(600)  # the test kills the job long before this ends


# what `atomic_path` names its temporaries: "." + target name + "." + mkstemp's 8 characters + ".tmp"
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the half-written temporaries (`atomic_path`) that a killed job left anywhere below `folder`.

    A SIGKILL skips `atomic_path`'s cleanup, so an interrupted run leaves ``.<name>.<random>.tmp`` files
    next to its outputs; a resumed run would finish with them still there (and DVC would hash them into the
    output). Long jobs call this when they (re)start, before any of their own writes begin.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.rglob(".*.tmp") if _TEMPORARY.match(p.name) and p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _canonical(obj: Any) -> Any:
    """A copy of nested dicts/lists/tuples whose strings are interned and containers fresh.

    Pickle writes a back-reference for an object it has already written (by identity), so equal states
    built differently — an optimizer state loaded from a checkpoint has its own 'step' key strings, a fresh
    one shares the interned literal — pickled to different bytes. Interned strings and unshared containers
    make the bytes a function of the values. Tensors are kept as they are (their sharing is meaningful);
    a state_dict's ``_metadata`` (module versions) is carried over.
    """
    if type(obj) is str:
        return sys.intern(obj)
    if type(obj) in (dict, OrderedDict):
        out = type(obj)((_canonical(k), _canonical(v)) for k, v in obj.items())
        if getattr(obj, "_metadata", None) is not None:
            out._metadata = _canonical(obj._metadata)
        return out
    if type(obj) in (list, tuple):
        return type(obj)(_canonical(v) for v in obj)
    return obj


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    """`torch.save` atomically, with the same bytes for the same values on every run (resumed or not)."""
    import torch  # lazy: storage is a foundation module that loads without torch

    # through a file object: given a path, torch.save names the zip archive's root folder after the file,
    # here the random temporary name, so every save of the same state had different bytes (and DVC hashes)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(_canonical(obj), fh)


class StateFileError(ValueError):
    """A torch file that holds something other than tensors and plain Python values (refused, not unpickled)."""


def load_torch(path: str | os.PathLike, what: str = "state", *, expected: str | None = None,
               map_location: Any = "cpu") -> Any:
    """`torch.load` with ``weights_only=True``: tensors, dicts, lists, tuples, numbers, strings and bools only.

    A file that would run other code while unpickling (a custom class, a function) is refused with
    `StateFileError` naming the file and the refused global; nothing of it is executed. A file that is not a
    torch file at all (text, an image, a truncated archive) raises `StateFileError` too. `what` names the
    file's role in the message (``resume state``, ``--init-from state``, ``--cache``); `expected` says what the
    file should be (default: a file written by syntfer, which can be deleted to start over).
    """
    import pickle

    import torch  # lazy: storage is a foundation module that loads without torch

    path = Path(path)
    if path.is_dir():
        raise StateFileError(f"{path}: {what} is a folder; expected {expected or 'a file written by syntfer'}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[-1] if lines else "")
        detail = detail.removeprefix("WeightsUnpickler error: ").split(". Please use")[0].rstrip(".")
        if "GLOBAL" in detail:
            raise StateFileError(f"{path}: {what} holds more than tensors and plain values ({detail}); expected "
                                 f"{expected or 'a file written by syntfer'} (weights_only load refused it, "
                                 "nothing was run)") from None
        reason = detail  # not a pickle at all ("Unsupported operand <byte>"): an unreadable file, as below
    except Exception as e:  # noqa: BLE001 - on bytes that are no torch file (text, an image, a cut archive) the
        # weights-only unpickler fails with whatever its parser hits: RuntimeError, EOFError, KeyError, IndexError...
        reason = str(e) if isinstance(e, RuntimeError) and str(e) else f"{type(e).__name__}: {e}"
    raise StateFileError(f"{path}: {what} is not a readable torch file ({reason}); expected "
                         f"{expected or 'a file written by syntfer (delete it to start over)'}") from None


def save_image(path: str | os.PathLike, image, **save_kw) -> None:
    """Save a PIL image atomically; the format comes from `path`'s suffix."""
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported image suffix {path.suffix!r}; expected .jpg, .png or .webp")
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **save_kw)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def module_fingerprint(model) -> str:
    """SHA-256 over a module's state_dict (names, shapes, dtypes, bytes): changes whenever any weight does."""
    import torch  # lazy: storage is a foundation module that loads without torch

    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
