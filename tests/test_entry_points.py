"""Scripts are thin doors into package code: no file in scripts/ imports another script, by package
name (``scripts.bench``), by a sibling's bare name (``from bench import ...``) or by putting
scripts/ on ``sys.path``; and the entry points moved into ``reproduction`` still answer as before."""

import ast
import importlib
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def path_constants(tree: ast.Module, file: Path) -> dict:
    """The module-level names a script binds to a path (``HERE = Path(__file__).resolve().parent``),
    evaluated as they would be when the script runs from ``file``."""
    names = {"Path": Path, "str": str, "__file__": str(file)}
    for node in tree.body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                value = eval(compile(ast.Expression(node.value), str(file), "eval"), {"__builtins__": {}}, names)
            except Exception:  # not a path expression (a list of columns, a call into a library, ...)
                continue
            for target in node.targets:
                names[target.id] = value
    return names


def script_imports(source: str, file: Path, siblings: set[str]) -> list[str]:
    """What in ``source`` (the text of the script ``file``) reaches another script: each offending
    import or sys.path change, as text."""
    tree = ast.parse(source, str(file))
    names = path_constants(tree, file)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module or ""]
            if node.module == "scripts":
                modules = [f"scripts.{a.name}" for a in node.names]
        elif isinstance(node, ast.ImportFrom):  # a relative import: scripts/ is no package
            modules = ["." * node.level + (node.module or "")]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("insert", "append", "extend")
            and ast.unparse(node.func.value) == "sys.path"
        ):
            where = node.args[-1]
            try:
                value = eval(compile(ast.Expression(where), str(file), "eval"), {"__builtins__": {}}, names)
            except Exception:
                found.append(f"line {node.lineno}: sys.path gets {ast.unparse(where)}, which this test cannot resolve")
                continue
            for entry in value if node.func.attr == "extend" else [value]:
                if Path(entry).resolve() == SCRIPTS:
                    found.append(f"line {node.lineno}: puts scripts/ on sys.path")
            continue
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top == "scripts" or top in siblings or module.startswith("."):
                found.append(f"line {node.lineno}: imports {module}")
    return found


def test_the_finder_catches_each_way_one_script_reaches_another(tmp_path):
    siblings = {"bench", "late_states"}
    cases = {
        "from bench import Epoch\n": "imports bench",
        "def f():\n    from late_states import late_state\n": "imports late_states",
        "import scripts.bench\n": "imports scripts.bench",
        "from scripts import bench\n": "imports scripts.bench",
        "import sys\nfrom pathlib import Path\nHERE = Path(__file__).resolve().parent\nsys.path.insert(0, str(HERE))\n": (
            "puts scripts/ on sys.path"
        ),
        "import sys\nfrom pathlib import Path\nsys.path.append(str(Path(__file__).parent))\n": "puts scripts/ on sys.path",
    }
    probe = SCRIPTS / "probe.py"  # never written: paths resolve as for a script in scripts/
    for source, expected in cases.items():
        found = script_imports(source, probe, siblings)
        assert len(found) == 1 and expected in found[0], (source, found)
    fine = (
        "import sys\nfrom pathlib import Path\nROOT = Path(__file__).resolve().parents[1]\n"
        "sys.path.insert(0, str(ROOT))\nfrom reproduction.bench import main\nimport benchmarks\n"
    )
    assert script_imports(fine, probe, siblings) == []


def test_no_script_imports_another():
    files = sorted(SCRIPTS.glob("*.py"))
    siblings = {f.stem for f in files}
    assert {"bench", "late_states", "figure_times"} <= siblings
    offending = {f.name: found for f in files if (found := script_imports(f.read_text(), f, siblings - {f.stem}))}
    assert not offending, offending


@pytest.mark.parametrize(
    "script, module",
    [
        ("bench", "reproduction.bench"),
        ("late_states", "reproduction.late_states"),
        ("figure_times", "reproduction.figure_times"),
    ],
)
def test_moved_scripts_are_entry_points_of_their_package_module(script, module, monkeypatch):
    """``python scripts/<name>.py`` runs ``main`` of ``reproduction.<name>`` (what the Makefile and docs/speed.md call)."""
    called = []
    package = importlib.import_module(module)
    monkeypatch.setattr(package, "main", lambda *args: called.append(args))
    monkeypatch.setattr(sys, "argv", [str(SCRIPTS / f"{script}.py")])
    runpy.run_path(str(SCRIPTS / f"{script}.py"), run_name="__main__")
    assert called == [()]
