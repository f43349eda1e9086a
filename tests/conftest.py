"""Shared fixtures: where the read-only shared data lives, and a skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

# OpenMP's default spin-wait stalls torch on a shared, oversubscribed CPU (measured: a 1-frame
# lift 5 s -> 0.5 s); set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """`$DIFFPOSE3D_SHARED` or `../shared` beside the repository."""
    return Path(os.environ.get("DIFFPOSE3D_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def humaneva_dir() -> Path:
    path = shared_dir() / "data" / "humaneva"
    if not (path / "data_3d_humaneva15_train.npz").is_file():
        pytest.skip(f"real HumanEva-I files not found in {path} (set DIFFPOSE3D_SHARED)")
    return path


@pytest.fixture(scope="session")
def h36m_3d_file() -> Path:
    path = shared_dir() / "data" / "h36m" / "data_3d_h36m.npz"
    if not path.is_file():
        pytest.skip(f"the real Human3.6M 3D file not found at {path} (set DIFFPOSE3D_SHARED)")
    return path


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A tiny, untrained model bundle (N = 4, 3 steps): for plumbing tests, not accuracy.

    g's last layer starts at zero in a fresh model; it is randomised here so g actually acts.
    """
    import torch

    from diffpose3d.bundle import save_bundle
    from diffpose3d.config import load_config
    from diffpose3d.model import DiffPoseModel

    torch.manual_seed(0)
    cfg = load_config(None, ["model.denoiser.width=16", "model.denoiser.blocks=1", "model.encoder.width=16",
                             "model.encoder.blocks=1", "inference.hypotheses=4", "inference.steps=3"])
    model = DiffPoseModel(cfg)
    torch.nn.init.normal_(model.denoiser.head.weight, std=0.1)
    folder = tmp_path_factory.mktemp("tiny_bundle")
    save_bundle(model, cfg, folder, {"note": "untrained"})
    return folder


# Batched EM is many small kernels: on a shared, oversubscribed CPU every multi-threaded kernel
# launch can wait a scheduler tick (~8 ms), so these folders' tests run single-threaded.
ONE_THREAD_FOLDERS = ("mixtures", "evidence", "diffusion", "uncertainty")


@pytest.fixture(autouse=True)
def _one_thread_in_small_kernel_folders(request: pytest.FixtureRequest):
    if Path(str(request.fspath)).parent.name not in ONE_THREAD_FOLDERS:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tree_snapshot(root: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Everything under `root` (links not followed) except `skip` and what is below it: per path,
    its kind and content (a file's bytes, a link's target), for before/after comparisons."""
    import stat

    seen: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in dirs + files:
            p = Path(folder) / name
            if skip is not None and (p == skip or skip in p.parents):
                continue
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                seen[str(p.relative_to(root))] = ("file", p.read_bytes(), st.st_ino)
            elif stat.S_ISLNK(st.st_mode):
                seen[str(p.relative_to(root))] = ("link", os.readlink(p))
            else:
                seen[str(p.relative_to(root))] = ("other", stat.S_IFMT(st.st_mode), st.st_ino)
    return seen


@pytest.fixture()
def snapshot():
    """`snapshot(root, skip=None)`: `tree_snapshot` (compare one before and one after a run)."""
    return tree_snapshot


def plant_non_regular(path: Path, kind: str, elsewhere: Path) -> None:
    """Put at `path` what an output must never be written through: a device node (/dev/null's
    numbers), a FIFO, a folder, or a link to the regular file `elsewhere`."""
    import os
    import stat

    if kind == "device":
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    else:
        os.symlink(elsewhere, path)


@pytest.fixture()
def plant():
    """`plant(path, kind, elsewhere)`: `plant_non_regular`."""
    return plant_non_regular
