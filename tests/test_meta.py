"""Checks on the code base itself: documented hooks, a vendor-free core, honest packaging."""

import inspect
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from im import hookspecs

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("httpx", "litestar", "sqlite_utils", "uvicorn", "limits", "tenacity", "im.server",
         "im.http", "im_pagerduty.client", "im_pagerduty.connector", "im_pagerduty.sandbox")
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
    """The core's code, and the plugin template `im plugin new` copies (a stranger's plugin
    starts from it), name no vendor."""
    paths = [path for folder in ("core", "cli", "server") for path in (REPO / folder).rglob("*.py")]
    templates = [path for path in (REPO / "core" / "templates").rglob("*") if path.is_file()]
    assert len(templates) >= 8
    offenders = []
    for path in paths + templates:
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


def test_plugins_use_only_the_public_api():
    """A plugin in this repo imports im's names from `im` itself, a front end's operations
    from the application layer `im.app` (as the CLI and the HTTP API do), and its test kit
    from `im.testing`, never from another submodule (`im.inbound`, `im.cli.output`, ...):
    what it needs is exported, so it would work unchanged as a stranger's plugin, and im may
    rearrange its modules."""
    submodule = re.compile(r"^\s*(?:from\s+im\.(?!testing\b|app\b)[\w.]+\s+import"
                           r"|import\s+im\.(?!testing\b|app\b))")
    offenders = []
    for folder in (REPO / "plugins").iterdir():
        package = folder / f"im_{folder.name}"
        for path in sorted(package.rglob("*.py")) if package.is_dir() else []:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if submodule.match(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
    assert (REPO / "plugins" / "pagerduty" / "im_pagerduty" / "webhooks.py").exists()


def test_importing_the_cli_loads_no_heavy_module():
    """Building the command line (make_app), plugins' commands included, loads neither the
    server, the HTTP client nor a plugin's connector, client or sandbox modules; nor msgspec
    and what needs it (the models, the store, the connector API)."""
    code = ("import sys; from im.cli import make_app; from im.runtime import Runtime; "
            "make_app(Runtime()); print(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "IM_LOAD_PLUGINS": "pagerduty"})
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "im_pagerduty" in loaded
    assert _matching(loaded, HEAVY) == []
    assert _matching(loaded, ("msgspec", "im.models", "im.storage", "im.connectors",
                              "im.incidents")) == []


# What `im` itself loads (im.cli.main, as the `im` executable runs it), in a fresh interpreter:
# the modules it adds to those the interpreter had at start (site hooks included).
RUN_IM = """
import sys
before = set(sys.modules)
from im.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("MODULES " + " ".join(sorted(set(sys.modules) - before)) + "\\n")
"""


def _modules_loaded_by(tmp_path, *args):
    env = {**os.environ, "IM_HOME": str(tmp_path / "home")}
    env.pop("IM_LOAD_PLUGINS", None)
    result = subprocess.run([sys.executable, "-c", RUN_IM, *args], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stderr, result.stderr
    return result.stderr.rsplit("MODULES ", 1)[1].split()


def _matching(loaded, names):
    return [m for m in loaded if any(m == n or m.startswith(n + ".") for n in names)]


def test_im_help_loads_neither_the_data_layer_nor_rich(tmp_path):
    """`im --help` lists every command, plugins' included, from what the command tree records:
    no command is built and nothing a command needs is imported. msgspec (the models, the
    store, the connector API) and rich stay out; so does every plugin module but the one
    that adds its commands."""
    loaded = _modules_loaded_by(tmp_path, "--help")
    assert "im_pagerduty.commands" in loaded  # the plugin did add its commands
    lazy = ("msgspec", "typing_extensions", "rich", "sqlite3", "sqlite_utils", "httpx",
            "im.connectors", "im.models", "im.storage", "im.incidents", "im.sync", "im.sla",
            "im.connector_config", "im_pagerduty.connector", "im_pagerduty.client",
            "im_pagerduty.sandbox", "tempfile", *HEAVY)
    assert _matching(loaded, lazy) == []


def test_im_list_and_declare_load_only_what_they_use(tmp_path):
    """With no connector configured, `im list` and `im declare` load the store and the
    models, and no connector, no sync code and nothing only other commands use."""
    lazy = ("rich", "sqlite_utils", "httpx", "im.sync", "im.connector_config",
            "im_pagerduty.connector", "im_pagerduty.client", "im_pagerduty.sandbox",
            "im.reports", "reportlab", "tempfile", *HEAVY)
    if os.environ.get("IM_DATABASE_URL"):  # PostgreSQL's driver (psycopg.pq) loads tempfile
        lazy = tuple(name for name in lazy if name != "tempfile")
    _modules_loaded_by(tmp_path, "list")  # creates the database: sqlite_utils, once
    listed = _modules_loaded_by(tmp_path, "list")
    assert "im.storage" in listed
    assert _matching(listed, ("im.connectors", *lazy)) == []
    declared = _modules_loaded_by(tmp_path, "declare", "--sev", "SEV-3", "--title", "x",
                                  "--service", "web")
    assert "im.storage" in declared
    assert _matching(declared, ("im.connectors", *lazy)) == []


def test_the_public_api_names_what_it_exports():
    """`im` loads its public names on first use: each one is found, and __all__ lists them."""
    import im

    assert sorted(im.__all__) == sorted(im._EXPORTS)
    for name in im.__all__:
        assert getattr(im, name) is not None
    assert "Connector" in dir(im)


def test_cli_reference_is_up_to_date(tmp_path, monkeypatch):
    """docs/cli.md is what `python -m im.cli.docs` prints (with the in-repo plugins)."""
    from im.cli.docs import render

    monkeypatch.delenv("IM_LOAD_PLUGINS", raising=False)
    monkeypatch.setenv("IM_HOME", str(tmp_path))
    current = (REPO / "docs" / "cli.md").read_text()
    assert render() == current, "docs/cli.md is stale: python -m im.cli.docs > docs/cli.md"


def test_connector_reference_is_up_to_date():
    """docs/connector-reference.md is what `python -m im.sdk_docs` prints: every Connector
    method with its exact signature, every struct with its fields, from the code."""
    from im.sdk_docs import STRUCTS, render

    current = (REPO / "docs" / "connector-reference.md").read_text()
    assert render() == current, (
        "docs/connector-reference.md is stale: python -m im.sdk_docs > docs/connector-reference.md")
    import im
    from im.connectors import Connector

    for name, member in vars(Connector).items():  # every public method is in it
        if inspect.isfunction(member) and not name.startswith("_"):
            assert f"### `{name}(" in current, name
    exported = {name for name in im.__all__ if isinstance(getattr(im, name), type)
                and hasattr(getattr(im, name), "__struct_fields__")
                and getattr(im, name).__module__ == "im.connectors"}
    assert exported <= set(STRUCTS), f"structs missing from the reference: {exported - set(STRUCTS)}"


def test_the_connector_reference_says_what_everything_means():
    """Every field of a struct, class attribute of Connector and member of an enum in
    docs/connector-reference.md has a meaning (the comment above it in the code), every
    method of the HTTP client is there with its docstring, and the page's anchors that the
    docs link to exist."""
    import im
    from im.sdk_docs import CLIENT_METHODS, ENUMS, STRUCTS, render

    page = render()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    without = [row.split(" | ")[0] for row in rows if row.rstrip().endswith("|  |")]
    assert without == [], (
        f"rows of the reference without a meaning: {without}: write a comment above the field"
        " (or attribute, or member) in the code, then python -m im.sdk_docs >"
        " docs/connector-reference.md")
    assert len(rows) > 150
    for name in ("Incident", "Link", "TimelineEvent"):
        assert name in STRUCTS and f"### `{name}`" in page
    assert {"Action", "Severity", "Status"} <= set(ENUMS)
    values = ", ".join(f"`{action.value}`" for action in im.Action)
    assert f"`action` is one of [`Action`](#action)'s values: {values};" in page
    public = {name for name, member in vars(im.ConnectorClient).items()
              if callable(member) and not name.startswith("_")}
    assert public == set(CLIENT_METHODS)
    for name in CLIENT_METHODS:
        assert f"#### `{name}(" in page and getattr(im.ConnectorClient, name).__doc__, name
    # the links into it point at headings it has (GitHub's anchors: the heading's words,
    # lower-cased, punctuation out, spaces as hyphens)
    anchors = {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
               for heading in re.findall(r"^#+ (.+)$", page, re.MULTILINE)}
    for doc in (REPO / "docs").rglob("*.md"):
        for anchor in re.findall(r"connector-reference\.md#([\w-]+)", doc.read_text()):
            assert anchor in anchors, f"{doc.name} links to connector-reference.md#{anchor}"
