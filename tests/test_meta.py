"""Checks on the code base itself: documented hooks, a vendor-free core, honest packaging."""

import inspect
import os
import re
import sys
import tomllib
from pathlib import Path

from im import hookspecs

REPO = Path(__file__).resolve().parents[1]
VENDORS = re.compile(r"pagerduty|opsgenie|slack|jira|servicenow|victorops", re.IGNORECASE)


def hook_names():
    return [name for name, value in vars(hookspecs).items()
            if callable(value) and hasattr(value, "im_spec")]


def test_every_hook_has_a_docs_section_with_its_exact_signature():
    docs = (REPO / "docs" / "plugin-hooks.md").read_text()
    headings = re.findall(r"^## `(.+)`$", docs, re.MULTILINE)
    expected = []
    for name in hook_names():
        params = inspect.signature(getattr(hookspecs, name)).parameters
        expected.append(f"{name}({', '.join(params)})")
    assert sorted(headings) == sorted(expected)
    assert len(expected) >= 4


def test_core_and_cli_name_no_vendor():
    offenders = []
    for folder in ("core", "cli", "server"):
        for path in (REPO / folder).rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if VENDORS.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_package_list_matches_the_folders():
    """Every package folder under core/, cli/ and server/ is listed (a wheel leaves out what
    is not), and nothing else is."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_dir = project["tool"]["setuptools"]["package-dir"]
    expected = set()
    for package, folder in package_dir.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            expected.add(".".join([package, *relative.parts]))
    assert sorted(project["tool"]["setuptools"]["packages"]) == sorted(expected)
    folders = {p.name for p in REPO.iterdir() if (p / "__init__.py").exists()}
    assert folders == set(package_dir.values())
    # The folders are installed under `im`, never as top-level `core`, `cli`, `server`
    # (checked from another folder: `python -m pytest` puts the repository on sys.path).
    import subprocess

    code = "import importlib.util as u; print([n for n in ('core', 'cli', 'server') if u.find_spec(n)])"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd="/").stdout.strip()
    assert found == "[]"


def test_every_plugin_is_its_own_distribution():
    for folder in (REPO / "plugins").iterdir():
        if not folder.is_dir():
            continue
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        assert project["name"] == f"im-{folder.name}"
        entry_points = project["entry-points"]["im.plugins"]
        assert entry_points == {folder.name: f"im_{folder.name}"}
        assert (folder / f"im_{folder.name}" / "__init__.py").exists()
        assert (folder / "tests").is_dir()


def test_importing_the_cli_loads_no_heavy_module():
    """`im --help` builds the whole command tree, plugins' commands included, without the
    server, the HTTP client or a plugin's connector, client or sandbox modules."""
    import subprocess

    heavy = ("httpx", "litestar", "sqlite_utils", "uvicorn", "limits", "tenacity",
             "im.server", "im_pagerduty.client", "im_pagerduty.connector",
             "im_pagerduty.sandbox")
    code = ("import sys; from im.cli import make_app; from im.runtime import Runtime; "
            "make_app(Runtime()); print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "IM_LOAD_PLUGINS": "pagerduty"})
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "im_pagerduty" in loaded
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy)] == []


def test_cli_reference_is_up_to_date(tmp_path, monkeypatch):
    """docs/cli.md is what `python -m im.cli.docs` prints (with the in-repo plugins)."""
    from im.cli.docs import render

    monkeypatch.delenv("IM_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("IM_HOME", str(tmp_path))
    current = (REPO / "docs" / "cli.md").read_text()
    assert render() == current, "docs/cli.md is stale: python -m im.cli.docs > docs/cli.md"
