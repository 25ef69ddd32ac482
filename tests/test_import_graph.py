"""asrkit's modules import each other without a circle, and none imports asrkit inside a function to dodge one.

Read from the source (ast), as a reader follows the imports: module-level ``import``/``from`` statements of
asrkit modules, leaving out those under ``if TYPE_CHECKING:`` (annotations only, never run).
"""

import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "asrkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(node: ast.AST, modules: Set[str]) -> List[str]:
    """The asrkit modules an import statement names (a ``from package import module`` names the module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.startswith("asrkit")]
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("asrkit"):
        return [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
    return []


def is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def graph() -> Dict[str, Set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: Dict[str, Set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if not is_type_checking(n)]
        edges[name] = {m for n in top for m in imported(n, set(files)) if m in files and m != name}
    return edges


def test_no_module_imports_asrkit_inside_a_function():
    inside = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(node)
                           if isinstance(n, (ast.Import, ast.ImportFrom)) and imported(n, set())]
    assert inside == []


def test_the_imports_form_no_circle():
    edges = graph()
    state: Dict[str, int] = {}  # 1: on the path being followed, 2: done
    path: List[str] = []

    def follow(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            assert state.get(target) != 1, " -> ".join(path[path.index(target):] + [target])
            if target not in state:
                follow(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            follow(module)


#: package -> the packages it must not import: the arrows run model <- search <- decoding, inference, training;
#: checkpoints and the config are at the top of the package, read by all of them
NOT_IMPORTED = {"asrkit.model": ("asrkit.search", "asrkit.decoding", "asrkit.inference", "asrkit.training",
                                 "asrkit.scoring"),
                "asrkit.search": ("asrkit.decoding", "asrkit.inference", "asrkit.training", "asrkit.scoring"),
                "asrkit.decoding": ("asrkit.training", "asrkit.inference"),
                "asrkit.inference": ("asrkit.training", "asrkit.decoding"),
                "asrkit.scoring": ("asrkit.training", "asrkit.decoding", "asrkit.inference", "asrkit.search"),
                "asrkit.config": ("asrkit.data", "asrkit.model", "asrkit.search", "asrkit.decoding", "asrkit.training",
                                  "asrkit.inference", "asrkit.scoring", "asrkit.workflow", "asrkit.checkpoint"),
                "asrkit.checkpoint": ("asrkit.training", "asrkit.decoding", "asrkit.inference", "asrkit.search")}


def test_the_arrows_point_down():
    upward = [f"{module} -> {target}" for module, targets in graph().items() for package, refused in NOT_IMPORTED.items()
              if module == package or module.startswith(package + ".")
              for target in targets if target.startswith(refused)]
    assert upward == []
