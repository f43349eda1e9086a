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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from diffpose3d.errors import InputFileError, OutputFileError

LOCK_NAME = ".diffpose3d.lock"
MANIFEST_SCHEMA = "diffpose3d.result-manifest/1"


def manifest_path(folder: Path, name: str) -> Path:
    return folder / f"{name}.manifest.json"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
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

    def __enter__(self) -> "OutputFolder":
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
    def joined(cls, path: str | Path, run_id: str) -> "OutputFolder":
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
            try:
                handle = open(lock, "a+b")
            except OSError as exc:
                raise _os_error(self.path, exc) from None
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
                (self.path / LOCK_NAME).unlink()
            self._lock.close()  # closing releases the lock
            self._lock = None
            if self._created:  # a run that wrote nothing leaves no folder behind
                with contextlib.suppress(OSError):
                    self.path.rmdir()

    # -- results ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def result(self, name: str) -> Iterator[Staging]:
        """Stage one result's files; on leaving the block without an error they are committed."""
        try:
            folder = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=self.path))
        except OSError as exc:
            raise _os_error(self.path, exc) from None
        stage = Staging(folder)
        try:
            yield stage
            self._check_targets(stage)
            self._write_manifest(name, stage)
            commit = self.path / f".{name}.commit"
            os.replace(folder, commit)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _fsync_dir(self.path)
        self._roll_forward(commit, name)

    def _check_targets(self, stage: Staging) -> None:
        for filename in stage.files:
            target = self.path / filename
            if target.is_dir() and not target.is_symlink():
                raise OutputFileError(target, "cannot write (Is a directory)")
            if not (stage.folder / filename).is_file():
                raise OutputFileError(target, "was not written")
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
        """Move a complete commit folder's files into place, the manifest last; idempotent."""
        new_manifest = manifest_path(commit, name)
        if new_manifest.is_file():
            files = json.loads(new_manifest.read_text(encoding="utf-8"))["files"]
            old = _read_manifest(manifest_path(self.path, name)) or {}
            try:
                for filename in files:
                    if (commit / filename).exists():
                        os.replace(commit / filename, self.path / filename)
                for filename in set(old.get("files", {})) - set(files):
                    with contextlib.suppress(FileNotFoundError):
                        (self.path / filename).unlink()
                os.replace(new_manifest, manifest_path(self.path, name))
            except OSError as exc:
                raise _os_error(self.path / filename, exc) from None
        shutil.rmtree(commit, ignore_errors=True)
        _fsync_dir(self.path)

    def recover(self) -> list[str]:
        """Finish the commits a killed run left (roll forward) and delete its staging folders;
        returns the names of the results recovered."""
        recovered = []
        for entry in sorted(self.path.iterdir()):
            if entry.name.startswith(".") and entry.name.endswith(".commit") and entry.is_dir():
                name = entry.name[1:-len(".commit")]
                self._roll_forward(entry, name)
                recovered.append(name)
            elif entry.name.startswith(".") and ".staging-" in entry.name and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
        return recovered


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


def _read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


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
        if (folder / f".{name}.commit").is_dir():
            raise InputFileError(p, "an interrupted write of this result is pending: run predict on this "
                                    "folder again to finish it")
        entry = manifest["files"][p.name]
        if p.stat().st_size != entry.get("bytes") or file_digest(p) != entry.get("sha256"):
            raise InputFileError(p, f"does not match {name}.manifest.json (written by another or an "
                                    "interrupted run): run predict again")
        return
