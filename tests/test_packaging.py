"""The distribution: `pip install grokking` is the torch-only library, every other use is an extra
that pyproject.toml declares, no module imports itself in a circle, and the configs ship inside the
package so that an installed `grokking-train` works from any directory."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCAL = ("grokking", "reproduction", "scripts", "tests")
FOREIGN = ("hydra", "omegaconf", "pandas", "matplotlib", "mlxtend", "yaml", "tqdm")
PUBLIC_API = (
    "stablemax",
    "stablemax_cross_entropy",
    "StableMaxCrossEntropyLoss",
    "OrthoGrad",
    "softmax_collapse_fraction",
    "nlm_alignment",
)


def requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def extra_closure(*extras: str) -> set[str]:
    """The distributions (normalized names) that ``pip install 'grokking[extras]'`` asks for, the
    core dependencies included and extras that name other extras followed."""
    names = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
            if requirement_name(requirement) == "grokking":
                todo += re.search(r"\[(.*)\]", requirement).group(1).split(",")
            else:
                names.add(requirement_name(requirement))
    return names


def imported_modules(path: Path, type_checking: bool = False, in_functions: bool = True) -> list[tuple[str, int]]:
    """``(module, level)`` of every import in ``path``: under ``if TYPE_CHECKING:`` only with
    ``type_checking``, inside functions only with ``in_functions`` (without: what importing it runs)."""
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and not type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not in_functions:
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.append((base, node.level))
            found.extend((f"{base}.{a.name}" if base else a.name, node.level) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def test_core_dependencies_are_torch_and_numpy():
    assert {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]} <= {"torch", "numpy"}


def test_the_public_api_imports_only_torch_at_import_time():
    """What `import grokking` runs (module-level imports, followed through grokking's modules)
    imports no third-party module but torch: not hydra, omegaconf, pandas, matplotlib, mlxtend,
    yaml or tqdm (the subprocess test below checks sys.modules itself)."""
    graph = module_graph(("grokking",), in_functions=False)
    third_party = {}
    for name, path in module_paths(("grokking",)).items():
        for module, level in imported_modules(path, in_functions=False):
            top = module.split(".")[0]
            if not level and top and top not in sys.stdlib_module_names and top != "grokking":
                third_party.setdefault(name, set()).add(top)
    loaded, todo = set(), ["grokking", *(f"grokking.{m}" for m in ("stablemax", "metrics", "optim"))]
    while todo:
        if (module := todo.pop()) not in loaded:
            loaded.add(module)
            todo += graph[module]
    assert {"grokking.stablemax", "grokking.losses"} <= loaded
    imports = {m: sorted(third_party.get(m, ())) for m in loaded if third_party.get(m, set()) - {"torch"}}
    assert not imports, f"import grokking imports {imports}"


@pytest.mark.slow
def test_the_public_api_imports_nothing_but_torch():
    """`import grokking` and its public names load no module that `import torch` has not loaded,
    besides grokking's own: not hydra, omegaconf, pandas, matplotlib, mlxtend, yaml or tqdm."""
    code = f"""
import json, sys
import torch
before = set(sys.modules)
import grokking
from grokking import {", ".join(PUBLIC_API)}
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    new = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    tops = {m.split(".")[0] for m in new} - set(sys.stdlib_module_names)
    assert tops <= {"grokking", "numpy"}, f"import grokking loads {sorted(tops - {'grokking', 'numpy'})}"
    assert not [m for m in new if m.split(".")[0] in FOREIGN]


def test_test_extra_declares_every_third_party_import():
    """Every distribution that the code, the scripts and the tests import is in `pip install -e
    '.[test]'` (the README's test command), so a new import cannot leave the suite uninstallable."""
    declared = extra_closure("test")
    providers = importlib.metadata.packages_distributions()
    local = {p.stem for d in LOCAL for p in (ROOT / d).glob("*.py")}
    undeclared = {}
    for folder in LOCAL:
        for path in (ROOT / folder).rglob("*.py"):
            for module, level in imported_modules(path, type_checking=True):
                top = module.split(".")[0]
                if level or not top or top in sys.stdlib_module_names or top in LOCAL or top in local:
                    continue
                if top == "torchvision":  # the official code's import, which its tests stub
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
                if not dists & declared:
                    undeclared.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert not undeclared, f"imported but in no extra of [test]: {undeclared}"


def test_extras_name_their_uses():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"hydra-core", "omegaconf", "pyyaml", "tqdm", "ninja"} <= extra_closure("train")
    assert {"pandas", "matplotlib", "mlxtend"} <= extra_closure("repro")
    assert {"notebook", "ipykernel", "pandas", "matplotlib", "omegaconf"} <= extra_closure("notebook")
    # the test command installs every extra but the notebook server (the suite runs the notebook headlessly)
    assert extra_closure(*(set(extras) - {"notebook"})) | {"nbclient", "nbformat"} <= extra_closure("test")
    readme = (ROOT / "README.md").read_text()
    for extra in extras:
        assert f".[{extra}]" in readme or f"grokking[{extra}]" in readme, f"README.md names no install of [{extra}]"


def module_paths(folders: tuple[str, ...]) -> dict[str, Path]:
    files = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def module_graph(folders: tuple[str, ...], in_functions: bool = True) -> dict[str, set[str]]:
    """Module -> the modules of ``folders`` it imports (at the top, or in a function with
    ``in_functions``; not under TYPE_CHECKING). The scripts import one another by bare name
    (``from bench import ...``)."""
    files = module_paths(folders)
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for module, level in imported_modules(path, in_functions=in_functions):
            if level:
                base = package.split(".")[: len(package.split(".")) - level + 1]
                module = ".".join([*base, module]) if module else ".".join(base)
            elif name.startswith("scripts.") and f"scripts.{module.split('.')[0]}" in files:
                module = f"scripts.{module}"
            while module and module not in files:
                module = module.rpartition(".")[0]
            if module and module != name:
                deps.add(module)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import circle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# Circles that remain to be broken. The list only shrinks: a new circle fails the test, and so does
# breaking one of these until its entry is removed.
KNOWN_CIRCLES: list[list[str]] = []


def test_no_import_circles():
    """No module of the library, the reproduction or the scripts imports, even from inside a
    function, a module that imports it back (but for the known circles above)."""
    graph = module_graph(("grokking", "reproduction", "scripts"))
    assert {"grokking.losses", "grokking.fused", "scripts.bench", "reproduction.claims"} <= set(graph)
    assert "grokking.losses" in graph["grokking.fused"]
    found = cycles(graph)
    described = ["; ".join(f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for m in c) for c in found]
    assert sorted(found) == sorted(KNOWN_CIRCLES), "import circles: " + " | ".join(described)


def test_conf_dir_is_the_checkouts_conf_or_the_shipped_copy(tmp_path, monkeypatch):
    import grokking.paths as paths

    assert paths.CONF_DIR == ROOT / "conf"  # the checkout (and an editable install)
    package = tmp_path / "site-packages" / "grokking"
    (package / "conf").mkdir(parents=True)
    monkeypatch.setattr(paths, "PACKAGE", package)
    assert paths.conf_dir() == tmp_path / "site-packages" / "conf"  # no config.yaml inside: beside it
    (package / "conf" / "config.yaml").write_text("defaults: []\n")
    assert paths.conf_dir() == package / "conf"  # a wheel


def test_entry_point_without_the_train_extra_is_one_error_line(monkeypatch, capsys):
    import grokking.__main__ as entry

    real = importlib.metadata.distribution
    monkeypatch.setattr(
        importlib.metadata,
        "requires",
        lambda name: ['hydra-core<1.4,>=1.3; extra == "train"', 'grokking[train]; extra == "test"', "torch"],
    )

    def distribution(name):
        if name == "hydra-core":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    assert entry.missing_requirements("train") == ["hydra-core"]
    with pytest.raises(SystemExit) as exit_:
        entry.main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:") and "hydra-core" in err and "grokking[train]" in err


def copy_tree(dest: Path) -> Path:
    """The working tree's files (tracked or not ignored) under ``dest``: a build there leaves no
    ``build/`` in the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file() and not rel.startswith(("results/", "runs/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.mark.slow
def test_wheel_ships_the_configs_and_grokking_train_runs_anywhere(tmp_path):
    """A non-editable install (a wheel) of the working tree, in a fresh environment that sees this
    one's packages but not its editable install: `grokking-train` and `python -m grokking` train from
    a directory far from the checkout, with the configs inside the wheel."""
    source = copy_tree(tmp_path / "src")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]  # offline if it can
    wheel_command = [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", tmp_path / "dist"]
    subprocess.run([*wheel_command, source], check=True)
    (wheel,) = (tmp_path / "dist").glob("grokking-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.removeprefix("grokking/conf/") for n in names if n.startswith("grokking/conf/")}
    assert shipped == {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    data = [
        p for d in ("grokking", "reproduction") for p in (source / d).rglob("*.*") if p.suffix not in (".py", ".pyc")
    ]
    assert {"grokking/native/common.h", "reproduction/headline.yaml"} <= {str(p.relative_to(source)) for p in data}
    assert not {str(p.relative_to(source)) for p in data} - set(names), "data files missing from the wheel"

    env_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", env_dir], check=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True
    ).stdout.strip()
    here = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True, text=True
    ).stdout.strip()
    Path(site, "this_environment.pth").write_text(here + "\n")  # its packages, not its .pth hooks (editable)
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "-q", wheel], check=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    where = subprocess.run(
        [python, "-c", "import grokking.paths as p; print(p.CONF_DIR)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()) == Path(site) / "grokking" / "conf", where.stderr
    for command, run_dir in (([env_dir / "bin" / "grokking-train"], "a"), ([python, "-m", "grokking"], "b")):
        done = subprocess.run(
            [*command, "epochs=5", "cpu_kernel=torch", f"hydra.run.dir={run_dir}"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads((elsewhere / run_dir / "summary.json").read_text())["status"] == "completed"
