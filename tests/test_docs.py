"""The README and docs/ stay true: every config key, module attribute, file and command they cite
exists and parses."""

from __future__ import annotations

import dataclasses
import importlib
import re
import shlex
from pathlib import Path

import pytest

from diffpose3d.cli import build_parser
from diffpose3d.config import Config

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def _backticked(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return re.findall(r"`([^`\n]+)`", text)


def _cited(pattern: str) -> list[tuple[str, str]]:
    found = set()
    for doc in DOCS:
        for token in _backticked(doc):
            for match in re.finditer(pattern, token):
                found.add((doc.name, match.group(0)))
    return sorted(found)


FILE_SUFFIXES = ("safetensors", "yaml", "json", "npz", "py", "md")
CONFIG_KEYS = [(doc, key) for doc, key in _cited(r"^(?:data|evidence|model|train|inference)(?:\.[a-z_][a-z0-9_]*)+$")
               if key.rsplit(".", 1)[1] not in FILE_SUFFIXES]
MODULE_NAMES = _cited(r"^diffpose3d(?:\.[A-Za-z_][A-Za-z0-9_]*)+(?=\(|$)")
PATHS = [(doc, path) for doc, path in _cited(r"^(?:src|tests|benchmarks|configs|docs)/[\w./-]*\w$")
         if not any(part.isupper() for part in path.split("/"))]  # NAME, RUN: placeholders


def _is_config_key(key: str) -> bool:
    node: object = Config()
    for part in key.split("."):
        if not (dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}):
            return False
        node = getattr(node, part)
    return True


def _resolves(name: str) -> bool:
    """`name` (dotted) is a module of the package or an attribute of one."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize(("doc", "key"), CONFIG_KEYS)
def test_cited_config_keys_exist(doc: str, key: str) -> None:
    """`section.key` is a setting, or else a module path of the package (`inference.predict`) or a
    method of a loaded model (`model.from_evidence`)."""
    from diffpose3d import DiffPose

    head, _, attr = key.partition(".")
    assert _is_config_key(key) or _resolves(f"diffpose3d.{key}") or (
        head == "model" and "." not in attr and hasattr(DiffPose, attr)), f"{doc}: {key}"


@pytest.mark.parametrize(("doc", "name"), MODULE_NAMES)
def test_cited_module_names_resolve(doc: str, name: str) -> None:
    assert _resolves(name), f"{doc}: {name}"


@pytest.mark.parametrize(("doc", "path"), PATHS)
def test_cited_paths_exist(doc: str, path: str) -> None:
    assert (REPO_ROOT / path).exists(), f"{doc}: {path}"


def _readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("&&"):
                part = part.split(" #")[0].strip()
                if part.startswith("diffpose3d "):
                    commands.append(part)
    return commands


def test_the_readme_has_commands() -> None:
    assert len(_readme_commands()) >= 5


@pytest.mark.parametrize("command", _readme_commands())
def test_readme_commands_parse(command: str) -> None:
    argv = [a for a in shlex.split(command)[1:] if a != "..."]
    parser = build_parser(argv[0])
    if "..." in command:  # an elided command: its subcommand and the options it names exist
        sub = next(a for a in parser._actions if a.dest == "command").choices[argv[0]]
        known = {opt for action in sub._actions for opt in action.option_strings}
        assert all(a in known for a in argv[1:] if a.startswith("--")), command
        return
    parser.parse_args(argv)
