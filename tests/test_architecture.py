"""The code's shape and what the releases publish: no script leans on tests/, no machine path leaves the machine."""

import ast
import json
import re
import subprocess

import pytest

from tests.conftest import ROOT

ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])/(?:home|work|tmp|root|Users|mnt|opt|var|srv|data)/")


def committed(*patterns: str) -> list[str]:
    return subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.split()


def absolute_paths(value) -> list[str]:
    """Every string in a parsed JSON value that is an absolute path."""
    if isinstance(value, dict):
        return [p for item in value.values() for p in absolute_paths(item)]
    if isinstance(value, list):
        return [p for item in value for p in absolute_paths(item)]
    return [value] if isinstance(value, str) and value.startswith("/") else []


@pytest.mark.parametrize("path", committed("models/*.json", "reports/*.json"))
def test_released_json_holds_no_machine_path(path):
    assert absolute_paths(json.loads((ROOT / path).read_text())) == []


@pytest.mark.parametrize("path", committed("models/*.md", "models/*.csv", "models/*.yaml"))
def test_released_text_holds_no_machine_path(path):
    assert ABSOLUTE_PATH.findall((ROOT / path).read_text()) == []


@pytest.mark.parametrize("path", committed("scripts/*.py", "space/*.py"))
def test_no_script_imports_the_tests(path):
    tree = ast.parse((ROOT / path).read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name == "tests" or name.startswith("tests.")]


@pytest.mark.parametrize("path", committed("cropdx_hf/*.py"))
def test_no_function_is_over_60_lines(path):
    tree = ast.parse((ROOT / path).read_text())
    long = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 60]
    assert long == []
