"""`im plugin new NAME`: the plugin it writes installs, is listed by `im plugins`, and its own
test suite, the conformance kit on the connector against the fake remote, passes.

Installing touches neither the network nor the project's .venv: the plugin goes into a
folder of its own (SITE), put on PYTHONPATH. With a setuptools that can build wheels offline
(70.1 or later, or the `wheel` package beside it) that is `pip install --no-deps
--no-build-isolation --target SITE`; with an older one, setuptools still reads the plugin's
pyproject.toml (`egg_info`) and its metadata becomes the dist-info pip would have written.
"""

import ast
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from im.cli.plugin_new import render
from im.testing import make_runtime, run_cli
from im.testing.conformance import RULES

REPO = Path(__file__).resolve().parents[1]
IM = str(Path(sys.executable).parent / "im")
TEMPLATES = REPO / "core" / "templates" / "plugin"


def install(plugin: Path, site: Path) -> dict[str, str]:
    """Install the plugin distribution in `plugin` into the folder `site`; the environment
    for running im and pytest with it."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("IM_LOAD_PLUGINS", None)
    site.mkdir(parents=True, exist_ok=True)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "--disable-pip-version-check", "--target", str(site),
         str(plugin)], capture_output=True, text=True, timeout=120)
    if pip.returncode == 0:
        return env
    assert "bdist_wheel" in pip.stdout + pip.stderr, pip.stdout + pip.stderr
    # setuptools before 70.1 builds no wheel without the `wheel` package: read the metadata
    # with setuptools all the same, and leave it as pip does, beside the sources
    egg_info = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info",
         "--egg-base", str(site)], cwd=plugin, capture_output=True, text=True, timeout=120)
    assert egg_info.returncode == 0, egg_info.stderr
    [egg] = site.glob("*.egg-info")
    metadata = (egg / "PKG-INFO").read_text()
    name = re.search(r"^Name: (.+)$", metadata, re.M).group(1)
    version = re.search(r"^Version: (.+)$", metadata, re.M).group(1)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(metadata)
    shutil.copy(egg / "entry_points.txt", info / "entry_points.txt")
    shutil.rmtree(egg)
    for package in tomllib.loads((plugin / "pyproject.toml").read_text())["tool"][
            "setuptools"]["packages"]["find"]["include"]:
        for folder in plugin.glob(package):
            shutil.copytree(folder, site / folder.name)
    return env


def counts(output: str) -> dict[str, int]:
    return {word: int(n) for n, word in re.findall(r"\b(\d+) (passed|skipped|failed|errors?)\b",
                                                   output)}


def test_new_writes_the_plugin_and_says_what_next(tmp_path):
    runtime = make_runtime(tmp_path / "home")
    result = run_cli(runtime, ["plugin", "new", "acme", "--path", str(tmp_path)])
    target = tmp_path / "im-acme"
    assert (result.exit_code, result.stdout) == (0, (
        f"Created {target}, a plugin with the connector type acme:\n"
        "  README.md\n"
        "  im_acme/__init__.py\n"
        "  im_acme/connector.py\n"
        "  im_acme/fake.py\n"
        "  pyproject.toml\n"
        "  tests/conftest.py\n"
        "  tests/test_conformance.py\n"
        "  tests/test_connector.py\n"
        "Next:\n"
        f"  cd {target}\n"
        "  pip install -e '.[test]'\n"
        "  pytest\n"))
    project = tomllib.loads((target / "pyproject.toml").read_text())["project"]
    assert (project["name"], project["version"], project["requires-python"]) == (
        "im-acme", "0.1.0", ">=3.11")
    assert project["dependencies"] == ["im>=0.1"]
    assert project["optional-dependencies"]["test"] == ["pytest>=8"]
    assert project["entry-points"]["im.plugins"] == {"acme": "im_acme"}
    assert 'IM_SDK = "1.0"' in (target / "im_acme" / "__init__.py").read_text()
    runtime.store.close()


def test_a_hyphenated_name_makes_a_module_and_classes_python_accepts():
    files = render("acme-cloud")
    assert "im_acme_cloud/connector.py" in files
    for path, text in files.items():
        if path.endswith(".py"):
            ast.parse(text, path)  # no placeholder left to break the code
        assert "${" not in text and "$name" not in text, path
    assert "class AcmeCloudConnector(im.Connector):" in files["im_acme_cloud/connector.py"]
    assert 'type = "acme-cloud"' in files["im_acme_cloud/connector.py"]
    assert tomllib.loads(files["pyproject.toml"])["project"]["entry-points"] == {
        "im.plugins": {"acme-cloud": "im_acme_cloud"}}


def test_the_templates_ship_with_the_core():
    """Every template is package data of `im` (pyproject.toml), so an installed im has them."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["im"]
    for template in TEMPLATES.rglob("*"):
        if template.is_file() and "__pycache__" not in template.parts:
            relative = template.relative_to(REPO / "core").as_posix()
            assert any(fnmatch.fnmatch(relative, glob) and relative.count("/") == glob.count("/")
                       for glob in globs), f"{relative} is not package data of im"


@pytest.mark.parametrize("name", ["Acme", "acme_cloud", "1acme", "acme-", "acme--cloud", "a b",
                                  ""])
def test_a_bad_name_is_refused_in_one_line(tmp_path, name):
    runtime = make_runtime(tmp_path / "home")
    result = run_cli(runtime, ["plugin", "new", name, "--path", str(tmp_path)])
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {name!r} is not a plugin name: use lower-case letters, digits and single"
        " hyphens, starting with a letter (acme, acme-cloud)\n"))
    assert not (tmp_path / f"im-{name}").exists()
    runtime.store.close()


def test_a_name_with_the_prefix_is_refused(tmp_path):
    runtime = make_runtime(tmp_path / "home")
    result = run_cli(runtime, ["plugin", "new", "im-acme", "--path", str(tmp_path)])
    assert (result.exit_code, result.stderr) == (
        1, "Error: name the plugin without im- (acme): its distribution is then im-acme\n")
    runtime.store.close()


def test_a_folder_that_is_not_empty_is_kept_unless_forced(tmp_path):
    runtime = make_runtime(tmp_path / "home")
    target = tmp_path / "im-acme"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = run_cli(runtime, ["plugin", "new", "acme", "--path", str(tmp_path)])
    assert (result.exit_code, result.stderr) == (1, (
        f"Error: {target} exists and is not empty: choose another --path, or --force to write"
        " into it\n"))
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    forced = run_cli(runtime, ["plugin", "new", "acme", "--path", str(tmp_path), "--force"])
    assert forced.exit_code == 0, forced.output
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "im_acme" / "connector.py").exists()
    # an empty folder is fine without --force
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "im-acme").mkdir()
    empty = run_cli(runtime, ["plugin", "new", "acme", "--path", str(tmp_path / "other")])
    assert empty.exit_code == 0, empty.output
    runtime.store.close()


@pytest.mark.slow  # installs the plugin and runs its suite: a pytest session of its own
def test_the_new_plugin_installs_is_listed_and_passes_the_conformance_kit(tmp_path):
    made = subprocess.run([IM, "plugin", "new", "acme"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "IM_HOME": str(tmp_path / "home")})
    assert (made.returncode, made.stderr) == (0, ""), made.stdout
    plugin = tmp_path / "im-acme"
    env = install(plugin, tmp_path / "site")
    env["IM_HOME"] = str(tmp_path / "home")

    listed = subprocess.run([IM, "plugins"], env={**env, "IM_LOAD_PLUGINS": "acme"},
                            capture_output=True, text=True, timeout=60)
    assert (listed.returncode, listed.stderr) == (0, "")
    assert listed.stdout == ("im SDK 1.0\n"
                             "\n"
                             "acme (im-acme 0.1.0), SDK 1.0\n"
                             "  connector types: acme\n"
                             "  commands: none\n"
                             "  routes: none\n"
                             "  hooks: register_connectors\n")
    everything = subprocess.run([IM, "plugins"], env=env, capture_output=True, text=True,
                                timeout=60)
    assert "\nacme (im-acme 0.1.0), SDK 1.0\n  connector types: acme\n" in everything.stdout

    # im imports it on every run: the hooks' module loads nothing heavy
    imported = subprocess.run([sys.executable, "-c", "import sys, im_acme; print(sorted(m for m"
                               " in ('httpx', 'im_acme.connector', 'litestar') if m in"
                               " sys.modules))"], env=env, capture_output=True, text=True,
                              timeout=60)
    assert (imported.returncode, imported.stdout) == (0, "[]\n"), imported.stderr

    # its own suite, from its folder, against the installed plugin (on SQLite, as its author
    # runs it: its tests would share one PostgreSQL database, not a home each)
    env.pop("IM_DATABASE_URL", None)
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
                           cwd=plugin, env=env, capture_output=True, text=True, timeout=300)
    output = suite.stdout + suite.stderr
    assert suite.returncode == 0, output[-6000:]
    tests = sum(len(re.findall(r"^def test_", file.read_text(), re.M))
                for file in (plugin / "tests").glob("test_*.py"))
    # every rule of the kit runs and passes (none skipped: the connector pushes, polls and
    # takes webhooks, and the fake can make every Fault), and so do the plugin's own tests
    assert counts(suite.stdout) == {"passed": tests + len(RULES)}, output
    assert "SKIPPED" not in suite.stdout
