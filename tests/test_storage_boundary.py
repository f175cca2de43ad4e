"""Only the storage package speaks SQL: a second store (PostgreSQL) is then one more package
beside im.storage.sqlite, and nothing else in im changes."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STORAGE = REPO / "core" / "storage"
# SQL as im writes it (upper-case keywords): a statement, or the start of one.
SQL = re.compile(r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b"
                 r"|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
                 r"|\b(CREATE|DROP)\s+(UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER)\b|\bALTER\s+TABLE\b"
                 r"|\bPRAGMA\s+\w|\bBEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED)\b|\bSAVEPOINT\s"
                 r"|\bjson_each\(")
# What runs SQL: a DB-API cursor's methods and the SQLite drivers.
EXECUTE = {"execute", "executemany", "executescript"}
DRIVERS = {"sqlite3", "sqlite_utils", "psycopg", "psycopg2", "apsw"}


def _sources() -> list[Path]:
    """Every module of im and of the in-repo plugins' packages. The plugins' tests (they look
    at the database a run left, as an operator would) are not part of a package; the
    PagerDuty sandbox is, and it holds no SQL either."""
    found = [path for folder in ("core", "cli", "server")
             for path in (REPO / folder).rglob("*.py")]
    found += [path for path in (REPO / "plugins").glob("*/im_*/**/*.py")]
    return sorted(path for path in found if STORAGE not in path.parents)


def sql_in(path: Path) -> list[str]:
    """Where a module holds SQL or runs it: `file:line: what`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = SQL.search(node.value)
            if match:
                found.append(f"{node.lineno}: SQL {match.group(0)[:40]!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in EXECUTE:
            found.append(f"{node.lineno}: .{node.func.attr}()")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {alias.name}" for alias in node.names
                      if alias.name.split(".")[0] in DRIVERS]
        elif isinstance(node, ast.ImportFrom) and node.module \
                and node.module.split(".")[0] in DRIVERS:
            found.append(f"{node.lineno}: from {node.module} import")
    name = path.relative_to(REPO) if REPO in path.parents else path
    return [f"{name}:{where}" for where in found]


def test_no_sql_outside_the_storage_package():
    sources = _sources()
    assert REPO / "core" / "observability.py" in sources  # the walk finds the modules
    assert any("im_pagerduty" in str(path) for path in sources)
    found = [where for path in sources for where in sql_in(path)]
    assert found == [], "SQL outside im.storage (move it into a repository):\n" + "\n".join(found)


def test_the_check_finds_sql_where_there_is_some(tmp_path):
    """The storage package itself is full of it, and so is a module that sneaks a query in."""
    assert sql_in(STORAGE / "sqlite" / "outbox.py")
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def count(store):\n"
                      "    return store.conn.execute('SELECT count(*) FROM inbox'\n"
                      "                              f' WHERE status = {1}').fetchone()\n")
    assert [line.split(": ", 1)[1] for line in sql_in(sneaky)] == [
        ".execute()", "SQL 'SELECT count(*) FROM'"]
