"""Output folders where each result's files (npz, json, renders) are one unit.

- **One writer per folder**: `OutputFolder` holds an exclusive lock (`.diffpose3d.lock`, an
  `flock`, released by the system when a process dies) for the whole run; a second run on the
  same folder is refused with one line.
- **A result is committed whole**: its files are written into a staging folder beside the
  targets (`.NAME.staging-*`), with a manifest (`NAME.manifest.json`: every file's size and
  SHA-256, a run id). The staging folder is renamed to `.NAME.commit` (one atomic step: from
  then on the new result is complete on disk), its files are moved into place, the previous
  result's files that the new one lacks are removed, and the manifest is moved last.
- **Recovery**: a run that dies while staging leaves the previous result whole (the staging
  folder is deleted by the next run on the folder); one that dies during the moves is finished by
  the next run (roll forward), and until then `verify_result` refuses the mixed files.
- **Nothing planted is trusted**: output folders are shared and downloaded, so what is in them may
  be hostile. A result's files are only ever names the tool derives from the result's name
  (`own_file`: `NAME.npz`, `NAME.json`, ... plain names in the folder); a manifest naming anything
  else (`../x`, `/abs`, another result's file) is not followed. A leftover `.NAME.commit` folder is
  rolled forward only when every file checks out against its manifest (`_verified_commit`),
  otherwise it is left as it is with a warning. Nothing is written through or deleted behind a
  link, and the lock file is never opened through a link or a FIFO.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

from diffpose3d.errors import InputFileError, OutputFileError
from diffpose3d.io.atomic import check_output_file, file_kind

LOCK_NAME = ".diffpose3d.lock"
MANIFEST_SCHEMA = "diffpose3d.result-manifest/1"
# The files a result NAME may have: NAME + one of these (what predict writes: the arrays, the page,
# the render, the exports; a live run's video and per-frame lines), or NAME_person<ID>.bvh; nothing else.
RESULT_SUFFIXES = (".npz", ".json", ".html", "_render.png", "_render.mp4", ".glb", ".mp4", ".jsonl")
_PERSON_BVH = re.compile(r"_person\d{1,10}\.bvh")
MAX_MANIFEST_BYTES = 1 << 20


def plain_name(name: str) -> bool:
    """True for a file name that stays in its folder: no separator, not '.', '..' or empty, no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and os.sep not in name and (os.altsep is None or os.altsep not in name))


def own_file(name: str, filename: object) -> bool:
    """True when `filename` is one a result called `name` may have (derived from the name)."""
    if not (isinstance(filename, str) and plain_name(filename) and plain_name(name) and filename.startswith(name)):
        return False
    rest = filename[len(name):]
    return rest in RESULT_SUFFIXES or _PERSON_BVH.fullmatch(rest) is not None


def _lstat_mode(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def _is_regular(path: Path) -> bool:
    mode = _lstat_mode(path)
    return mode is not None and stat.S_ISREG(mode)


def _is_real_dir(path: Path) -> bool:
    mode = _lstat_mode(path)
    return mode is not None and stat.S_ISDIR(mode)


def read_regular_bytes(path: Path, max_bytes: int = MAX_MANIFEST_BYTES) -> bytes | None:
    """The bytes of `path` if it is a regular file (not a link, FIFO or device) of at most
    `max_bytes`; None otherwise. Never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb") as handle:
            fd = -1
            data = handle.read(max_bytes + 1)
    except OSError:
        return None
    finally:
        if fd >= 0:
            os.close(fd)
    return data if len(data) <= max_bytes else None


def manifest_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.manifest.json"


def file_digest(path: Path, follow_links: bool = False) -> str:
    """SHA-256 of a regular file (opened without blocking on a FIFO, and without following a link
    unless `follow_links`)."""
    digest = hashlib.sha256()
    nofollow = 0 if follow_links else getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, os.O_RDONLY | nofollow | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path}: not a regular file")
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _os_error(path: Path, exc: OSError, what: str = "cannot write") -> OutputFileError:
    return OutputFileError(path, f"{what} ({exc.strerror or exc})")


class Staging:
    """Where one result's files are written before the commit; `path(name)` is a file's place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[str] = []

    def path(self, filename: str) -> Path:
        if not plain_name(filename):
            raise ValueError(f"a result's file is a plain name in its folder, got {filename!r}")
        if filename not in self.files:
            self.files.append(filename)
        return self.folder / filename


class OutputFolder:
    """An output folder, locked for the run (`with OutputFolder(path) as out:`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = None
        self._created = False
        self.run_id = uuid.uuid4().hex

    def __enter__(self) -> OutputFolder:
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _os_error(self.path, exc, "cannot create the output folder") from None
        self._acquire()
        try:
            self.recover()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    @classmethod
    def joined(cls, path: str | Path, run_id: str) -> OutputFolder:
        """The folder of a run whose lock another process holds (a `batch`'s driver; its workers
        write here): results are staged and committed as usual, under that run's id, and no lock
        is taken. The folder must exist."""
        folder = cls(path)
        folder.run_id = run_id
        return folder

    # -- the lock ---------------------------------------------------------------------------------
    def _acquire(self) -> None:
        lock = self.path / LOCK_NAME
        while True:
            handle = _open_lock(lock)
            if not _try_lock(handle):
                handle.close()
                raise OutputFileError(self.path, "another diffpose3d run is writing to this folder: "
                                                 "wait for it to finish, or choose another --out")
            try:  # the file we locked may have been removed by the run that just finished: retry
                if os.fstat(handle.fileno()).st_ino == os.stat(lock).st_ino:
                    self._lock = handle
                    return
            except FileNotFoundError:
                pass
            handle.close()

    def _release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):
                lock = self.path / LOCK_NAME
                if os.lstat(lock).st_ino == os.fstat(self._lock.fileno()).st_ino:  # ours, not a replacement
                    lock.unlink()
            self._lock.close()  # closing releases the lock
            self._lock = None
            if self._created:  # a run that wrote nothing leaves no folder behind
                with contextlib.suppress(OSError):
                    self.path.rmdir()

    # -- results ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def result(self, name: str) -> Iterator[Staging]:
        """Stage one result's files; on leaving the block without an error they are committed."""
        if not plain_name(name):
            raise OutputFileError(self.path / str(name), "not a plain file name for a result")
        try:
            folder = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=self.path))
        except OSError as exc:
            raise _os_error(self.path, exc) from None
        stage = Staging(folder)
        try:
            yield stage
            self._check_targets(name, stage)
            self._write_manifest(name, stage)
            commit = self.path / f".{name}.commit"
            if _lstat_mode(commit) is not None:
                raise OutputFileError(commit, f"is in the way of this result's commit ({file_kind(_lstat_mode(commit))}, "
                                              "not one this run can finish): remove it, or choose another --out")
            os.replace(folder, commit)
        except BaseException:
            _remove_staging(folder)
            raise
        _fsync_dir(self.path)
        self._roll_forward(commit, name)

    def _check_targets(self, name: str, stage: Staging) -> None:
        """Every file the commit will replace is a regular file (or absent), the staged ones were written."""
        for filename in [*stage.files, manifest_path(self.path, name).name]:
            check_output_file(self.path / filename)
        for filename in stage.files:
            if not _is_regular(stage.folder / filename):
                raise OutputFileError(self.path / filename, "was not written")
        if not os.access(self.path, os.W_OK):
            raise OutputFileError(self.path, "cannot write (Permission denied)")

    def _write_manifest(self, name: str, stage: Staging) -> None:
        files = {f: {"bytes": (stage.folder / f).stat().st_size, "sha256": file_digest(stage.folder / f)}
                 for f in stage.files}
        text = json.dumps({"schema": MANIFEST_SCHEMA, "name": name, "run": self.run_id, "files": files}, indent=2)
        target = manifest_path(stage.folder, name)
        with open(target, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(stage.folder)

    def _roll_forward(self, commit: Path, name: str) -> None:
        """Move a verified commit folder's files into place, the manifest last; idempotent.

        Only names derived from `name` are moved or deleted, each only when it is a regular file;
        the previous manifest's other entries are not followed."""
        files = _verified_commit(self.path, commit, name)
        if files is None:
            _warn(commit, "not a commit this tool can verify (its files do not match its manifest): left as it is")
            return
        new_manifest = manifest_path(commit, name)
        if _is_regular(new_manifest):
            old = _read_manifest(manifest_path(self.path, name)) or {}
            filename = name
            try:
                for filename in files:
                    if _is_regular(commit / filename):
                        check_output_file(self.path / filename)
                        os.replace(commit / filename, self.path / filename)
                for filename in sorted(set(old.get("files", {})) - set(files)):
                    if own_file(name, filename) and _is_regular(self.path / filename):
                        (self.path / filename).unlink()
                filename = new_manifest.name
                check_output_file(manifest_path(self.path, name))
                os.replace(new_manifest, manifest_path(self.path, name))
            except OSError as exc:
                raise _os_error(self.path / filename, exc) from None
        with contextlib.suppress(OSError):
            commit.rmdir()  # empty now; a folder with anything else in it is not ours to delete
        _fsync_dir(self.path)

    def recover(self) -> list[str]:
        """Finish the commits a killed run left (roll forward, after verifying them) and delete its
        staging folders; returns the names of the results recovered."""
        recovered = []
        for entry in sorted(self.path.iterdir()):
            if not _is_real_dir(entry) or not entry.name.startswith("."):
                continue
            if entry.name.endswith(".commit") and len(entry.name) > len("..commit"):
                name = entry.name[1:-len(".commit")]
                if not plain_name(name):
                    continue
                before = _is_real_dir(entry)
                self._roll_forward(entry, name)
                if before and not _is_real_dir(entry):
                    recovered.append(name)
            elif ".staging-" in entry.name:
                _remove_staging(entry)
        return recovered


def _warn(path: Path, problem: str) -> None:
    from diffpose3d.io.limits import InputWarning

    warnings.warn(InputWarning(path, problem), stacklevel=3)


def _remove_staging(folder: Path) -> None:
    """Delete a staging folder a run left: only when it is a real folder of regular files with
    plain names (what `OutputFolder.result` writes); anything else is left alone."""
    if not _is_real_dir(folder):
        return
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    if not all(e.is_file(follow_symlinks=False) and plain_name(e.name) for e in entries):
        return
    for entry in entries:
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
    with contextlib.suppress(OSError):
        folder.rmdir()


def _verified_commit(folder: Path, commit: Path, name: str) -> list[str] | None:
    """The files of a commit folder when everything in it checks out, else None.

    A commit is this tool's when its manifest (a regular file, the schema, this name) lists only
    names derived from `name`, the folder holds nothing but those files and the manifest, and
    each listed file is a regular file with the listed size and SHA-256: in the commit folder, or
    (already moved by the run that was killed) in `folder`. A commit folder whose manifest was
    already moved is complete when it is empty."""
    if not _is_real_dir(commit):
        return None
    try:
        present = {e.name: e.is_file(follow_symlinks=False) for e in os.scandir(commit)}
    except OSError:
        return None
    manifest_name = manifest_path(commit, name).name
    if manifest_name not in present:
        return [] if not present else None
    manifest = _parse_manifest(read_regular_bytes(commit / manifest_name))
    if manifest is None or manifest.get("schema") != MANIFEST_SCHEMA or manifest.get("name") != name:
        return None
    files = manifest["files"]
    if not all(own_file(name, f) and isinstance(e, dict) for f, e in files.items()):
        return None
    if not all(present.values()) or set(present) - set(files) - {manifest_name}:
        return None
    for filename, entry in files.items():
        where = commit / filename if filename in present else folder / filename
        if not _matches(where, entry):
            return None
    return list(files)


def _matches(path: Path, entry: dict) -> bool:
    """A regular file of the size and SHA-256 `entry` lists."""
    try:
        return (_is_regular(path) and os.lstat(path).st_size == entry.get("bytes")
                and file_digest(path) == entry.get("sha256"))
    except OSError:
        return False


def _open_lock(lock: Path):
    """The lock file, opened without following a link and without blocking on a FIFO; refused in
    one line when it is not a regular file."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as exc:
        mode = _lstat_mode(lock)
        if mode is not None and not stat.S_ISREG(mode):
            raise OutputFileError(lock, f"is {file_kind(mode)}, not a lock file: remove it") from None
        raise _os_error(lock.parent, exc) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OutputFileError(lock, f"is {file_kind(mode)}, not a lock file: remove it")
    return os.fdopen(fd, "a+b")


def _try_lock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def _parse_manifest(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("files"), dict) else None


def _read_manifest(path: Path) -> dict | None:
    """A manifest's content when it is a regular file holding one; else None (never blocks)."""
    return _parse_manifest(read_regular_bytes(path))


def complete_result(folder: str | Path, name: str) -> dict | None:
    """The manifest of result `name` in `folder` when the result is complete (every file it names
    is there with its size and SHA-256, and no commit of it is pending), else None."""
    folder = Path(folder)
    manifest = _read_manifest(manifest_path(folder, name))
    if manifest is None or manifest.get("name") != name or (folder / f".{name}.commit").exists():
        return None
    for filename, entry in manifest["files"].items():
        path = folder / filename
        try:
            if (not isinstance(entry, dict) or path.parent != folder or not path.is_file()
                    or path.stat().st_size != entry.get("bytes") or file_digest(path) != entry.get("sha256")):
                return None
        except OSError:
            return None
    return manifest


def verify_result(path: str | Path) -> None:
    """Refuse a result file that its manifest does not vouch for (an interrupted commit or a
    file from another run). Files without a manifest (older outputs) pass."""
    p = Path(path)
    folder = p.parent
    names = [m.name[: -len(".manifest.json")] for m in folder.glob("*.manifest.json")]
    for name in names:
        manifest = _read_manifest(manifest_path(folder, name))
        if manifest is None or p.name not in manifest["files"]:
            continue
        if _is_real_dir(folder / f".{name}.commit"):
            raise InputFileError(p, "an interrupted write of this result is pending: run predict on this "
                                    "folder again to finish it")
        entry = manifest["files"][p.name]
        try:
            same = (isinstance(entry, dict) and p.stat().st_size == entry.get("bytes")
                    and file_digest(p, follow_links=True) == entry.get("sha256"))
        except OSError:
            same = False
        if not same:
            raise InputFileError(p, f"does not match {name}.manifest.json (written by another or an "
                                    "interrupted run): run predict again")
        return
