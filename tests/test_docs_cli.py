"""docs/cli.md names every command and every option that the real ``--help`` lists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = ROOT / "docs" / "cli.md"
COMMANDS = ["demo", "replay", "run", "validate", "check", "discover", "tail", "init", "local"]
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def console_script() -> Path:
    script = Path(sys.executable).with_name("panoply-async")
    if not script.exists():
        pytest.fail(f"console script not found beside the interpreter: {script}")
    return script


def help_text(*args: str) -> str:
    result = subprocess.run(
        [str(console_script()), *args, "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def options_section(text: str) -> str:
    """The ``Options:`` part of a help text (the description may quote other commands)."""
    _, _, options = text.partition("\nOptions:\n")
    options, _, _ = options.partition("\nCommands:\n")
    return options


def test_every_command_is_documented() -> None:
    text = help_text()
    listed = re.findall(r"^  ([a-z][a-z-]*)\s", text.partition("\nCommands:\n")[2], re.M)
    assert sorted(listed) == sorted(COMMANDS), "update COMMANDS and docs/cli.md"
    doc = CLI_DOC.read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"## `{command}`" in doc, f"docs/cli.md has no section for {command}"
    for option in OPTION.findall(options_section(text)):
        assert option in doc, f"panoply-async {option} is not in docs/cli.md"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_is_documented(command: str) -> None:
    options = OPTION.findall(options_section(help_text(command)))
    assert options, f"no options found in `panoply-async {command} --help`"
    doc = CLI_DOC.read_text(encoding="utf-8")
    missing = sorted({o for o in options if o not in doc})
    assert not missing, f"`panoply-async {command}` options missing from docs/cli.md: {missing}"


def test_issue14_item13_readme_and_quickstart_say_how_to_run_the_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("make ")]
    assert [c.split()[:2] for c in commands[:2]] == [["make", "demo"], ["make", "test"]]
    for text in (readme, quickstart):
        assert ".venv/bin/panoply-async" in text
        assert "source .venv/bin/activate" in text


def test_issue14_item14_quickstart_installs_from_a_clone_or_a_wheel() -> None:
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    # The package is not on the package index: no instruction may pretend it is.
    assert "pip install 'panoply-async" not in quickstart
    assert "pip install -e './panoply-async[local]'" in quickstart
    assert "python -m build" in quickstart
    assert "py3-none-any.whl[local]" in quickstart
