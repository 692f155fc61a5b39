"""The layers of the README's "Layout" hold: no import cycle among the project's modules, lower
layers never import higher ones, and only `qa_core/generation/` knows local from server generation."""

import ast
import re
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("qa_core", "hub", "train_job")
# Bottom to top: a module may import its own layer and those below, never one above.
# (Imports inside functions, which load a heavy layer only when a command needs it, are left out
# of this check; they count for cycles.)
LAYERS = [
    {"qa_core", "qa_core.errors", "qa_core.config", "qa_core.cli", "qa_core.memory", "qa_core.ports"},
    {"qa_core.hub", "qa_core.prompts", "qa_core.data", "qa_core.documents", "qa_core.chunking", "qa_core.embeddings"},
    {"qa_core.text_data", "qa_core.demo_model", "qa_core.smollm2", "qa_core.reports", "qa_core.metrics"},
    # generation never imports models: a backend is handed its model
    {"qa_core.generation", "qa_core.extractive", "qa_core.quantities", "qa_core.questions"},
    {"qa_core.models", "qa_core.grounding", "qa_core.unanswerable"},
    {"qa_core.qa", "qa_core.perplexity", "qa_core.rag", "qa_core.synth", "qa_core.visitors"},
    {"qa_core.evaluate", "qa_core.serving", "qa_core.__main__", "hub", "train_job", "app"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [ROOT / "app.py", *(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))]
    return {module_name(path): path for path in files}


def imports(path: Path, known: set[str], inside_functions: bool, type_checking: bool = False) -> set[str]:
    """The project modules `path` imports when it runs, at module level, and inside functions too if
    `inside_functions`; those under `if TYPE_CHECKING:` too if `type_checking`."""

    def walk(nodes: list[ast.stmt]) -> set[str]:
        found = set()
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and not type_checking:
                found |= walk(node.orelse)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not inside_functions:
                continue
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found |= {name for name in names if name in known}
            for field in ("body", "orelse", "handlers", "finalbody"):
                found |= walk([child for child in getattr(node, field, []) if isinstance(child, ast.AST)])
        return found

    return walk(ast.parse(path.read_text()).body)


def import_graph(inside_functions: bool, type_checking: bool = False) -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports(path, known, inside_functions, type_checking) - {name} for name, path in modules.items()}


def layer_of(module: str) -> int | None:
    """The layer of the longest prefix of `module` that LAYERS names."""
    parts = module.split(".")
    shortest = 2 if parts[0] == "qa_core" and module != "qa_core" else 1  # every qa_core module is placed itself
    for end in range(len(parts), shortest - 1, -1):
        for index, layer in enumerate(LAYERS):
            if ".".join(parts[:end]) in layer:
                return index
    return None


def test_no_import_cycle():
    """Type-only imports count too: a cycle through them is a knot a reader meets all the same
    (generation's batching and backend named each other that way)."""
    graph = import_graph(inside_functions=True, type_checking=True)
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module) :] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_every_module_has_a_layer_and_imports_only_downwards():
    """Imports inside functions count: cli.py, drawn as the bottom layer, loaded models and ran
    questions from inside its functions."""
    graph = import_graph(inside_functions=True)
    unplaced = sorted(module for module in graph if layer_of(module) is None)
    assert not unplaced, f"place these modules in a layer of LAYERS (and the README's Layout): {unplaced}"
    upward = [
        f"{module} imports {imported}"
        for module, imported_modules in graph.items()
        for imported in imported_modules
        if layer_of(imported) > layer_of(module)
    ]
    assert not upward, upward


# Ways to tell local from server generation: naming a backend class or the setting, or asking
# whether the weights are here (ask the backend what it can do instead: `scores_tokens`).
LOCAL_OR_SERVER = re.compile(
    r"\b(?:LocalBackend|ServerBackend|generation_backend|loaded\.server)\b"
    r"|\.model is (?:not )?None|== \"(?:local|openai)\""
)
# Where the choice is made (models), declared (config) and offered as an option (cli).
CHOOSERS = ("qa_core.generation", "qa_core.models", "qa_core.config", "qa_core.cli")


def test_only_generation_knows_local_from_server():
    """The backend is chosen once, in `load_model`; nothing else branches on it (it used to miss
    evaluate's `loaded.model is not None` and `generation_backend != "local"`)."""
    offenders = [
        f"{name}: {match.group(0)}"
        for name, path in project_modules().items()
        if not name.startswith(CHOOSERS)
        for match in LOCAL_OR_SERVER.finditer(path.read_text())
    ]
    assert not offenders, offenders
