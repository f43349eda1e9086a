"""Output folders cannot be turned against the user: for any planted content of an output folder
(manifests naming `../x` or absolute paths, commit and staging folders, links, FIFOs, device
nodes), a run changes nothing outside the folder and nothing inside it that is not the result's
own, and ends in a result or a one-line refusal (never a hang, never a traceback).

Each example builds a sandbox tree (`precious.txt`, `sub/secret.txt`, the output folder `out/`),
plants things in `out/`, writes a result into `out/`, and compares snapshots of the tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_results import fake_result  # tests/io is on the path (no __init__.py)

from diffpose3d.errors import DiffPoseError
from diffpose3d.inference.outputs import write_result
from diffpose3d.io.atomic import check_output_file, save_json_atomic, save_npz_atomic
from diffpose3d.io.results import LOCK_NAME, MANIFEST_SCHEMA, OutputFolder, own_file

NAME = "clip"
OWN = [f"{NAME}.npz", f"{NAME}.json", f"{NAME}_render.png", f"{NAME}.html"]


def hostile_names(sandbox: Path) -> list[str]:
    return ["../precious.txt", str(sandbox / "precious.txt"), "../sub", "../sub/secret.txt", "keep.txt",
            "", ".", "..", "sub/../../precious.txt", f"{NAME}.npz/../../precious.txt", *OWN]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manifest_doc(entries: dict[str, bytes], name: str = NAME, correct: bool = True) -> dict:
    return {"schema": MANIFEST_SCHEMA, "name": name, "run": "planted",
            "files": {f: {"bytes": len(b), "sha256": sha(b) if correct else "0" * 64} for f, b in entries.items()}}


# One planted thing: (kind, arguments drawn by Hypothesis).
plant = st.one_of(
    st.tuples(st.just("manifest"), st.lists(st.integers(0, 13), max_size=5), st.booleans()),
    st.tuples(st.just("commit"), st.lists(st.integers(0, 13), max_size=5), st.booleans(),
              st.sampled_from(["files", "links", "nested", "none", "manifest-only"])),
    st.tuples(st.just("link"), st.sampled_from([*OWN, f"{NAME}.manifest.json", LOCK_NAME, f".{NAME}.commit"]),
              st.sampled_from(["../precious.txt", "ABS", "../sub"])),
    st.tuples(st.just("fifo"), st.sampled_from([*OWN, f"{NAME}.manifest.json", LOCK_NAME])),
    st.tuples(st.just("device"), st.sampled_from([f"{NAME}.npz", f"{NAME}.json", LOCK_NAME])),
    st.tuples(st.just("folder"), st.sampled_from([f"{NAME}.npz", f"{NAME}.manifest.json", LOCK_NAME])),
    st.tuples(st.just("staging"), st.sampled_from(["link", "file", "nested"])),
)


def build(sandbox: Path, plants: list) -> Path:
    (sandbox / "sub").mkdir(parents=True)
    (sandbox / "precious.txt").write_bytes(b"precious")
    (sandbox / "sub" / "secret.txt").write_bytes(b"secret")
    out = sandbox / "out"
    out.mkdir()
    (out / "keep.txt").write_bytes(b"not the tool's")
    names = hostile_names(sandbox)

    def entries(indices):
        return {names[i]: b"precious" if "precious" in names[i] else b"x" for i in indices}

    def put(path: Path, data: bytes) -> None:
        if not os.path.lexists(path):  # two plants on one name: the first stays
            path.write_bytes(data)

    for kind, *args in plants:
        try:
            if kind == "manifest":
                put(out / f"{NAME}.manifest.json", json.dumps(manifest_doc(entries(args[0]), correct=args[1])).encode())
            elif kind == "commit":
                commit = out / f".{NAME}.commit"
                if os.path.lexists(commit) and not commit.is_dir():
                    continue
                commit.mkdir(exist_ok=True)
                listed = entries(args[0])
                style = args[2]
                if style != "none":
                    put(commit / f"{NAME}.manifest.json", json.dumps(manifest_doc(listed, correct=args[1])).encode())
                for filename, data in listed.items():
                    if style == "manifest-only" or "/" in filename or filename in ("", ".", ".."):
                        continue
                    if style == "files":
                        put(commit / filename, data)
                    elif style == "links":
                        os.symlink(sandbox / "precious.txt", commit / filename)
                    elif style == "nested":
                        (commit / filename).mkdir(exist_ok=True)
                        (commit / filename / "inner").write_bytes(b"inner")
            elif kind == "link":
                target = str(sandbox / "precious.txt") if args[1] == "ABS" else args[1]
                os.symlink(target, out / args[0])
            elif kind == "fifo":
                os.mkfifo(out / args[0])
            elif kind == "device":
                os.mknod(out / args[0], 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
            elif kind == "folder":
                (out / args[0]).mkdir()
                (out / args[0] / "inner.txt").write_bytes(b"inner")
            elif kind == "staging":
                staging = out / f".{NAME}.staging-planted"
                staging.mkdir(exist_ok=True)
                if args[0] == "link":
                    os.symlink(sandbox / "precious.txt", staging / "p")
                elif args[0] == "file":
                    put(staging / f"{NAME}.npz", b"x")
                else:
                    (staging / "deeper").mkdir(exist_ok=True)
                    (staging / "deeper" / "f").write_bytes(b"x")
        except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError):
            pass  # two plants on one name: the first stays
    return out


class Hung(BaseException):
    pass


def _alarm(signum, frame):
    raise Hung()


def run_guarded(fn) -> BaseException | None:
    """`fn()` with a 20 s alarm (a blocking open of a FIFO would hang); returns what it raised."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        fn()
        return None
    except Exception as exc:
        return exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def not_own(snap: dict) -> dict:
    """The entries of a snapshot of `out/` that are not the result's own files or the tool's
    transient ones (the lock, the staging and commit folders it made)."""
    keep = {}
    for rel, value in snap.items():
        top = rel.split(os.sep)[0]
        if own_file(NAME, top) or top == f"{NAME}.manifest.json":
            continue
        keep[rel] = value
    return keep


@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(plant, max_size=4))
def test_no_planted_content_makes_a_run_touch_anything_outside_the_output(snapshot, plants):
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = Path(tmp) / "sandbox"
        out = build(sandbox, plants)
        outside = snapshot(sandbox, skip=out)
        inside = not_own(snapshot(out))
        error = run_guarded(lambda: write_result(fake_result(2, 0), out, NAME))
        assert not isinstance(error, Hung), "the run hung (a FIFO opened for reading or writing?)"
        if error is not None:
            assert isinstance(error, DiffPoseError), f"{type(error).__name__} escaped: {error}"
            assert len(str(error).splitlines()) == 1
        assert snapshot(sandbox, skip=out) == outside
        after = not_own(snapshot(out))
        # what was planted and is not the result's stays, except leftovers of the tool's own kind:
        # the lock file, a staging folder of plain files, a commit folder that checks out
        def tools_leftover(rel: str) -> bool:
            top = rel.split(os.sep)[0]
            if top == LOCK_NAME or top == f".{NAME}.commit":
                return True  # the commit folder: the property is on what is outside and on keep.txt
            if top.startswith(f".{NAME}.staging-"):
                members = [r for r in inside if r.startswith(top + os.sep)]
                return all(inside[r][0] == "file" and r.count(os.sep) == 1 for r in members)
            return False

        for rel, value in inside.items():
            if not tools_leftover(rel):
                assert after.get(rel) == value, f"{rel} changed"
        if error is None:
            for filename in (f"{NAME}.npz", f"{NAME}.json"):
                assert stat.S_ISREG(os.lstat(out / filename).st_mode)


def test_a_manifest_naming_outside_files_deletes_nothing_outside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("precious")
    planted = {"../precious.txt": {"bytes": 8, "sha256": sha(b"precious")},
               str(tmp_path / "precious.txt"): {"bytes": 8, "sha256": sha(b"precious")}}
    (out / f"{NAME}.manifest.json").write_text(json.dumps({"schema": MANIFEST_SCHEMA, "name": NAME, "files": planted}))
    write_result(fake_result(2, 0), out, NAME)
    assert (tmp_path / "precious.txt").read_text() == "precious"
    assert json.loads((out / f"{NAME}.manifest.json").read_text())["files"].keys() == {"clip.npz", "clip.json"}


def test_a_planted_commit_folder_moves_nothing_in(tmp_path):
    out = tmp_path / "out"
    commit = out / f".{NAME}.commit"
    commit.mkdir(parents=True)
    (tmp_path / "precious.txt").write_text("precious")
    os.symlink(tmp_path / "precious.txt", commit / f"{NAME}.npz")
    doc = manifest_doc({f"{NAME}.npz": b"precious", "../precious.txt": b"precious"})
    (commit / f"{NAME}.manifest.json").write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="not a commit this tool can verify"), OutputFolder(out):
        pass
    assert (tmp_path / "precious.txt").read_text() == "precious"
    assert not (out / f"{NAME}.npz").exists() and commit.is_dir()


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "link"])
def test_every_atomic_write_refuses_a_path_that_is_not_a_regular_file(tmp_path, kind, snapshot, plant):
    target = tmp_path / "target"
    (tmp_path / "elsewhere").write_text("elsewhere")
    plant(target, kind, tmp_path / "elsewhere")
    before = snapshot(tmp_path)
    for write in (lambda: save_json_atomic(target, {}), lambda: save_npz_atomic(target, a=[1]),
                  lambda: check_output_file(target)):
        with pytest.raises(DiffPoseError, match="exists and is .*refusing to replace it"):
            write()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["fifo", "link"])
def test_the_lock_file_is_never_opened_through_a_link_or_a_fifo(tmp_path, kind, snapshot):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("precious")
    if kind == "fifo":
        os.mkfifo(out / LOCK_NAME)
    else:
        os.symlink(tmp_path / "precious.txt", out / LOCK_NAME)
    before = snapshot(tmp_path)
    error = run_guarded(lambda: OutputFolder(out).__enter__())
    assert isinstance(error, DiffPoseError) and "not a lock file" in str(error)
    assert snapshot(tmp_path) == before
