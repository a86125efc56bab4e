"""The connector module contract: loading by name or path, and every problem listed at once."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path

import pytest

from panoply_async.connectors._contract import (
    ConnectorError,
    check_connector,
    connector_name,
    load_connector,
    validate_connector,
)
from panoply_async.errors import PanoplyError

ICON = "data:image/png;base64,iVBORw0KGgo="

GOOD = f'''
from panoply_async import DataSource

CONFIG = {{
    "title": "Good",
    "icon": "{ICON}",
    "params": [
        {{"name": "user", "title": "User", "placeholder": "me", "help": "Who"}},
        {{"name": "dsn", "type": "password", "secret": True, "required": True}},
        {{"name": "pages", "type": "number", "default": 3}},
        {{"name": "tables", "type": "list", "values": lambda source: ["a"],
          "dependencies": ["user"], "link": "https://example.com"}},
    ],
    "categories": ["APIs"],
    "keywords": ["test"],
}}


class Stream(DataSource):
    async def read(self, n=None):
        self.log("connecting to", self.source["dsn"])
        yield [{{"id": 1}}]
'''


def write(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def test_a_good_module_passes(tmp_path: Path) -> None:
    path = write(tmp_path, "good.py", GOOD)
    module = validate_connector(str(path))
    assert check_connector(module) == []
    assert module.CONFIG["title"] == "Good"
    assert module.__name__ == "panoply_connector_good"


async def test_a_loaded_connector_masks_its_secret_params(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    module = validate_connector(str(write(tmp_path, "masked.py", GOOD)))
    ds = module.Stream({"dsn": "postgres://u:pw@h/db"})
    with caplog.at_level(logging.INFO, logger="panoply_async.datasource"):
        assert [batch async for batch in ds.read()] == [[{"id": 1}]]
    assert "connecting to ***" in caplog.text
    assert "pw@h" not in caplog.text


def test_a_legacy_sync_read_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "legacy.py", f'''
        from panoply_async import DataSource
        CONFIG = {{"title": "Legacy", "icon": "{ICON}", "params": []}}
        class Legacy(DataSource):
            def read(self, n=None):
                return None
        Stream = Legacy
    ''')
    assert check_connector(load_connector(str(path))) == []


@pytest.mark.parametrize("signature", ["self", "self, n", "self, batch_size=None", "self, *args",
                                       "self, n=None, *, extra=1"])
def test_every_callable_legacy_read_signature_is_accepted(tmp_path: Path, signature: str) -> None:
    path = write(tmp_path, "legacy_sig.py", f'''
        from panoply_async import DataSource
        CONFIG = {{"title": "Legacy", "icon": "{ICON}", "params": []}}
        class Stream(DataSource):
            def read({signature}):
                return None
    ''')
    assert check_connector(load_connector(str(path))) == []


@pytest.mark.parametrize("signature", ["self, a, b", "self, n=None, *, since"])
def test_a_read_that_cannot_be_called_is_refused(tmp_path: Path, signature: str) -> None:
    path = write(tmp_path, "bad_sig.py", f'''
        from panoply_async import DataSource
        CONFIG = {{"title": "Legacy", "icon": "{ICON}", "params": []}}
        class Stream(DataSource):
            def read({signature}):
                return None
    ''')
    problems = check_connector(load_connector(str(path)))
    assert len(problems) == 1
    assert problems[0].startswith("Stream.read needs the arguments")
    assert "it is called as read(n)" in problems[0]


def test_a_stream_the_runner_cannot_build_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "one_arg.py", f'''
        from panoply_async import DataSource
        CONFIG = {{"title": "Legacy", "icon": "{ICON}", "params": []}}
        class Stream(DataSource):
            def __init__(self, source):
                super().__init__(source)
            def read(self):
                return None
    ''')
    problems = check_connector(load_connector(str(path)))
    assert len(problems) == 1
    assert problems[0].startswith("Stream(source, options) cannot be called")


@pytest.mark.parametrize("kind", ["oauth", "OAuth", "textarea", "select", "multiselect",
                                  "hidden", "object", "json", "datetime", "radio", "tags"])
def test_legacy_param_types_are_accepted(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, "legacy_types.py", f'''
        from panoply_async import DataSource
        CONFIG = {{"title": "Legacy", "icon": "{ICON}",
                  "params": [{{"name": "p", "title": "P", "type": "{kind}"}}]}}
        class Stream(DataSource):
            def read(self):
                return None
    ''')
    assert check_connector(load_connector(str(path))) == []


def test_an_unknown_param_type_is_still_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "odd_type.py", f'''
        from panoply_async import DataSource
        CONFIG = {{"title": "T", "icon": "{ICON}", "params": [{{"name": "p", "type": "oath"}}]}}
        class Stream(DataSource):
            def read(self):
                return None
    ''')
    problems = check_connector(load_connector(str(path)))
    assert len(problems) == 1
    assert "type 'oath' is not one of" in problems[0]
    assert "oauth" in problems[0]


def test_an_empty_module_lists_both_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.py", "X = 1\n")
    with pytest.raises(ConnectorError) as info:
        validate_connector(str(path))
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("no Stream")
    assert problems[1].startswith("no CONFIG")
    assert "no Stream" in str(info.value)
    assert "no CONFIG" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PanoplyError)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("class Stream:\n    def read(self, n=None):\n        return None\n",
         "Stream must be a subclass of panoply_async.DataSource, not Stream"),
        ("Stream = 5\n", "Stream must be a subclass of panoply_async.DataSource, not int"),
        ("class Stream(DataSource):\n    pass\n", "Stream does not implement read()"),
        ("class Stream(DataSource):\n    async def read(self, n=None):\n        return []\n",
         "Stream.read is an `async def` that returns"),
    ],
)
def test_bad_streams(tmp_path: Path, stream: str, expected: str) -> None:
    code = (f"from panoply_async import DataSource\n"
            f"CONFIG = {{'title': 'T', 'icon': {ICON!r}, 'params': []}}\n{stream}")
    problems = check_connector(load_connector(str(write(tmp_path, "bad_stream.py", code))))
    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_every_config_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "bad_config.py", '''
        from panoply_async import DataSource

        CONFIG = {
            "title": "",
            "icon": "https://example.com/icon.png",
            "params": [
                {"name": "user"},
                {"name": "user"},
                {"name": "2fa"},
                "port",
                {"name": "port", "type": "colour", "required": "yes", "help": 5},
                {"name": "flag", "type": "boolean", "default": "true", "secret": 1},
                {"name": "pages", "type": "number", "default": "ten"},
                {"name": "tables", "dependencies": ["user", "account"]},
            ],
        }

        class Stream(DataSource):
            pass
    ''')
    with pytest.raises(ConnectorError) as info:
        validate_connector(str(path))
    problems = info.value.problems
    expected = [
        "Stream does not implement read()",
        "CONFIG['title'] must be a non-empty string",
        "CONFIG['icon'] must be a data URL",
        "CONFIG['params'][1]: name 'user' is used twice",
        "CONFIG['params'][2]: 'name' must be an identifier-like string, got '2fa'",
        "CONFIG['params'][3] must be a dict, not str",
        "('port'): 'help' must be a string",
        "('port'): 'required' must be true or false",
        "('port'): type 'colour' is not one of",
        "('flag'): 'secret' must be true or false",
        "('flag'): the default of a boolean param must be true or false",
        "('pages'): the default of a number param must be a number",
        "('tables'): 'dependencies' names unknown params ['account']",
    ]
    assert len(problems) == len(expected)
    for fragment in expected:
        assert any(fragment in problem for problem in problems), fragment
    for fragment in expected:
        assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("[]", "CONFIG must be a dict, not list"),
        (f"{{'title': 'T', 'icon': {ICON!r}}}", "CONFIG has no 'params'"),
        (f"{{'title': 'T', 'icon': {ICON!r}, 'params': {{}}}}",
         "CONFIG['params'] must be a list of dicts, not dict"),
        ("{'title': 'T', 'icon': 'data:image/png;base64,', 'params': []}",
         "CONFIG['icon'] must be a data URL"),
        ("{'title': 5, 'icon': None, 'params': []}", "CONFIG['title'] must be"),
    ],
)
def test_bad_config_shapes(tmp_path: Path, config: str, expected: str) -> None:
    code = ("from panoply_async import DataSource\n"
            f"CONFIG = {config}\n"
            "class Stream(DataSource):\n"
            "    async def read(self, n=None):\n"
            "        yield []\n")
    problems = check_connector(load_connector(str(write(tmp_path, "shape.py", code))))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_package_directory_with_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "crm_source"
    package.mkdir()
    write(package, "reader.py", '''
        from panoply_async import DataSource
        class Crm(DataSource):
            async def read(self, n=None):
                yield [{"id": 1}]
    ''')
    write(package, "__init__.py", f'''
        from .reader import Crm
        Stream = Crm
        CONFIG = {{"title": "CRM", "icon": "{ICON}", "params": []}}
    ''')
    module = validate_connector(str(package))
    assert module.Stream.__name__ == "Crm"
    assert connector_name(str(package)) == "crm_source"


def test_a_single_file_can_import_a_module_beside_it(tmp_path: Path) -> None:
    write(tmp_path, "helpers_for_connector.py", "ANSWER = 42\n")
    path = write(tmp_path, "uses_helper.py", f'''
        from helpers_for_connector import ANSWER
        from panoply_async import DataSource
        CONFIG = {{"title": "T", "icon": "{ICON}", "params": []}}
        class Stream(DataSource):
            async def read(self, n=None):
                yield [{{"answer": ANSWER}}]
    ''')
    assert validate_connector(str(path)).ANSWER == 42
    assert str(tmp_path) not in sys.path


def test_a_module_by_importable_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "named_connector_xyz.py", GOOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = validate_connector("named_connector_xyz")
    assert module.__name__ == "named_connector_xyz"
    assert connector_name("pkg.named_connector_xyz") == "named_connector_xyz"


def test_a_connector_file_does_not_shadow_the_standard_library(tmp_path: Path) -> None:
    path = write(tmp_path, "json.py", GOOD)
    module = validate_connector(str(path))
    assert sys.modules["json"] is json
    assert module is not json
    assert connector_name(str(path)) == "json"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("missing", "no such file or directory"),
        ("syntax", "import failed: SyntaxError"),
        ("raises", "import failed: RuntimeError: cannot start"),
        ("no_init", "the directory has no __init__.py"),
        ("no_module", "cannot import module 'no_such_connector_module_abc'"),
    ],
)
def test_load_failures(tmp_path: Path, setup: str, expected: str) -> None:
    targets = {
        "missing": str(tmp_path / "absent.py"),
        "syntax": str(write(tmp_path, "syntax.py", "def broken(:\n")),
        "raises": str(write(tmp_path, "raises.py", "raise RuntimeError('cannot start')\n")),
        "no_init": str(tmp_path),
        "no_module": "no_such_connector_module_abc",
    }
    target = targets[setup]
    with pytest.raises(ConnectorError) as info:
        load_connector(target)
    assert info.value.target == target
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert "panoply_connector_raises" not in sys.modules
