"""Every command's every option with hostile values (Hypothesis): the CLI answers with a result or
one line on stderr, exit 0 or 2, never a traceback, and writes nothing outside the sandbox's
output paths. Inputs are missing or tiny so each call is refused or finishes in well under a
second; the refusals come from the same code paths as with real data."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffpose3d.cli import COMMANDS, build_parser, main, run_command

HOSTILE = ["-1", "0", "1", "2", "51", "100000", "1e30", "1e-320", "-1e-320", "nan", "inf", "-inf",
           "9223372036854775808", "-9223372036854775809", "", " ", "x", "all", "Train", "bogus", "cuda:99",
           "../x", "/", "..", "S1,,S9", "OUT", "DEV", "FIFO", "PRECIOUS", "\u00e9\u00e8", "0x10", "1_000"]


def options(command: str) -> list[tuple[str, int | None]]:
    """(option string, nargs) of every option of `command` (help and test hooks left out)."""
    parser = build_parser(command)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    found = []
    for action in sub._actions:
        if not action.option_strings or action.dest in ("help", "stop_after_chunks"):
            continue
        nargs = 0 if action.nargs == 0 else (action.nargs if isinstance(action.nargs, int) else 1)
        found.append((action.option_strings[-1], nargs))
    return found


# The least each command needs to get past argparse (inputs that do not exist, outputs in the sandbox).
BASE = {
    "predict": ["IN", "--out", "OUTDIR"],
    "demo": ["--out", "OUTDIR", "--no-detector"],
    "evaluate": ["--predictions", "IN", "--dataset", "h36m", "--data-3d", "IN", "--out", "OUT"],
    "train": ["--config", "IN", "--out", "OUTDIR"],
    "fit-gmm": ["--data-2d", "IN", "--out", "OUT"],
    "calibrate": ["--checkpoint", "IN", "--dataset", "h36m", "--data-3d", "IN"],
    "batch": ["IN", "--out", "OUTDIR"],
    "fit-ood": ["--checkpoint", "IN"],
    "fit-miss": ["--checkpoint", "IN", "--dataset", "h36m", "--data-3d", "IN"],
}


def concrete(value: str, sandbox: Path) -> str:
    names = {"IN": sandbox / "missing.npz", "OUT": sandbox / "out" / "o.json", "OUTDIR": sandbox / "out" / "d",
             "DEV": sandbox / "dev", "FIFO": sandbox / "fifo", "PRECIOUS": sandbox / "precious.txt"}
    return str(names.get(value, value))


def snapshot(root: Path) -> dict:
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            st_ = os.lstat(p)
            seen[str(p)] = (stat.S_IFMT(st_.st_mode), p.read_bytes() if stat.S_ISREG(st_.st_mode) else None)
    return seen


calls = st.sampled_from([name for name, _, _ in COMMANDS]).flatmap(
    lambda command: st.tuples(
        st.just(command),
        st.lists(st.tuples(st.sampled_from(options(command)), st.lists(st.sampled_from(HOSTILE), min_size=2, max_size=2)),
                 min_size=1, max_size=3),
    )
)


@contextlib.contextmanager
def _inside(folder: str):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.mark.slow  # about 3 min of wall clock on a busy 2-core machine (12 s of CPU)
@settings(max_examples=120, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(calls)
def test_hostile_option_values_give_a_result_or_one_line(capsys, call):
    command, chosen = call
    with tempfile.TemporaryDirectory() as tmp, _inside(tmp):  # relative paths (--out -1) land in the sandbox
        sandbox = Path(tmp)
        (sandbox / "precious.txt").write_text("precious")
        os.mknod(sandbox / "dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        os.mkfifo(sandbox / "fifo")
        argv = [command, *(concrete(v, sandbox) for v in BASE[command])]
        for (flag, nargs), values in chosen:
            argv += [flag, *(concrete(v, sandbox) for v in values[: nargs or 0])]
        before = snapshot(sandbox)
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        assert code in (0, 2), (argv, code, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, (argv, err)  # warnings + the error
        if code == 2:
            assert err.strip().splitlines()[-1].startswith("diffpose3d"), (argv, err)
        targets = [str(sandbox / "out")] + [str(sandbox / argv[i + 1]) for i, a in enumerate(argv[:-1]) if a == "--out"]
        after = {k: v for k, v in snapshot(sandbox).items() if not any(k == t or k.startswith(t + os.sep) for t in targets)}
        before = {k: v for k, v in before.items() if not any(k == t or k.startswith(t + os.sep) for t in targets)}
        assert after == before, argv


def test_an_unexpected_error_is_one_line_too(capsys):
    def boom():
        raise KeyError("deep inside")

    assert run_command("predict", boom) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unexpected KeyError" in err[0]


def test_an_os_error_is_one_line_exit_2(capsys):
    def denied():
        raise PermissionError(13, "Permission denied", "/some/file")

    assert run_command("fit-gmm", denied) == 2
    assert capsys.readouterr().err.strip() == "diffpose3d fit-gmm: error: /some/file: Permission denied"
