"""The library's import graph: one way, no cycles, no imports hidden inside functions.

Read from the source with ``ast`` (top-level imports only), so a cycle fails here even where
Python's import order would happen to tolerate it. The layers are the README's "Architecture".
"""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "explorer"

# Lower layers never import higher ones. A new module gets a line here (and in the README).
LAYERS = {
    0: ["io", "layout", "compute", "configs", "data", "distributed", "image_metrics", "interpolation", "projection", "published",
        "schema", "uploads"],
    1: ["nets", "losses", "svgd", "metrics", "metrics.frechet", "metrics.latent", "metrics.modes"],
    2: ["samplers", "samplers.gmm", "samplers.two_stage", "samplers.expost", "samplers.sidecar"],
    3: ["models", "models.base", "models.vae", "models.ar_elbo", "models.consistency", "models.ldc_vae",
        "models.lsr_gan", "models.ldc_refit", "models.ae", "models.rae", "models.wae"],
    4: ["checkpoint"],
    5: ["classifier", "metrics.backbones", "metrics.protocol", "onnx_export", "training"],
    6: ["evaluate", "adversarial"],
    7: ["expost", "trainers"],
    8: [""],  # the package itself: explorer/__init__.py, the public entry points
}
RANK = {name: layer for layer, names in LAYERS.items() for name in names}
HEAVY_OPTIONAL = {"sklearn", "umap", "torchvision", "streamlit"}  # may be imported inside functions


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        parts = list(p.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _targets(mod: str, path: Path, node, mods) -> set[str]:
    """Project modules a top-level import statement loads, as names relative to ``explorer``."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names if a.name == "explorer" or a.name.startswith("explorer.")]
        return {n[len("explorer."):] if n != "explorer" else "" for n in names}
    if node.level == 0:
        if not (node.module == "explorer" or node.module.startswith("explorer.")):
            return set()
        base = node.module[len("explorer."):] if node.module != "explorer" else ""
    else:
        here = mod.split(".") if mod else []
        if path.name != "__init__.py":
            here = here[:-1]
        here = here[:len(here) - (node.level - 1)]
        base = ".".join(here + ([node.module] if node.module else []))
    subs = {f"{base}.{a.name}".lstrip(".") for a in node.names} & set(mods)
    return subs if subs and node.module is None else ({base} | subs)


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {}
    for mod, path in mods.items():
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                deps |= _targets(mod, path, node, mods)
        graph[mod] = {d for d in deps if d != mod and d in mods}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        state[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_every_module_has_a_layer():
    missing = sorted(set(_modules()) - set(RANK))
    assert not missing, f"modules without a layer in tests/test_architecture.py LAYERS (and the README): {missing}"


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(c or "explorer" for c in cycle)


def test_imports_point_down_the_layers():
    upward = [f"{m or 'explorer'} (layer {RANK[m]}) imports {d or 'explorer'} (layer {RANK[d]})"
              for m, deps in _graph().items() for d in sorted(deps) if RANK.get(d, 99) > RANK.get(m, -1)]
    assert not upward, "imports that climb a layer:\n" + "\n".join(upward)


def test_no_project_imports_inside_functions():
    hidden = []
    for mod, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.level or (inner.module or "").startswith("explorer")):
                        hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
                    elif isinstance(inner, (ast.Import, ast.ImportFrom)):
                        names = [a.name for a in inner.names] if isinstance(inner, ast.Import) else [inner.module]
                        if any(n.split(".")[0] not in HEAVY_OPTIONAL for n in names):
                            hidden.append(f"{path.relative_to(ROOT)}:{inner.lineno} ({', '.join(names)})")
    assert not hidden, "imports inside functions (only sklearn, umap, torchvision may be): " + ", ".join(hidden)


def test_a_fresh_interpreter_imports_every_module():
    names = ["explorer" + (f".{m}" if m else "") for m in _modules()]
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\nprint('ok')"
    out = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_the_library_never_imports_streamlit():
    users = [str(p.relative_to(ROOT)) for p in _modules().values() if "streamlit" in p.read_text()
             and any(isinstance(n, (ast.Import, ast.ImportFrom)) and "streamlit" in ast.dump(n)
                     for n in ast.walk(ast.parse(p.read_text())))]
    assert not users, f"explorer/ must not import streamlit: {users}"
