"""Import boundaries (ARCHITECTURE.md): core and the CLI stay headless; torch and onnxruntime stay put.

Two checks complement each other:
* a subprocess really imports ``autopaint_app.core`` (every module in it) and ``autopaint_app.cli`` and
  lists what got loaded — catches indirect imports through third-party packages;
* an ``ast`` scan of every source file — catches imports hidden in functions that never ran.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "autopaint_app"
HEADLESS_FORBIDDEN = ("PySide6", "pyqtgraph", "shiboken6", "superqt", "torch")
ONNXRUNTIME_HOME = "autopaint_app.core.inpaint_model"
# The export tool checks the ONNX file it wrote against PyTorch; it runs outside the app.
ONNX_EXPORT_CHECK = "autopaint_app.training.export"
ONNX_QUANTIZE_TOOL = "autopaint_app.training.quantize"  # quantize_static: a model-building tool, not the app

_IMPORT_EVERYTHING = textwrap.dedent("""
    import importlib, json, pkgutil, sys, traceback
    import autopaint_app.core as core
    names = ["autopaint_app.core"] + [m.name for m in pkgutil.walk_packages(core.__path__, "autopaint_app.core.")]
    if CLI_EXISTS:
        names.append("autopaint_app.cli")
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except BaseException:
            failed[name] = traceback.format_exc()
    print(json.dumps({"imported": names, "failed": failed, "loaded": sorted(sys.modules)}))
""")


def _cli_exists() -> bool:
    return (PACKAGE_DIR / "cli.py").is_file() or (PACKAGE_DIR / "cli" / "__init__.py").is_file()


def _is_forbidden(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_core_and_cli_import_without_qt_or_torch():
    script = _IMPORT_EVERYTHING.replace("CLI_EXISTS", str(_cli_exists()))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert not report["failed"], "modules failed to import:\n" + "\n".join(
        f"{name}:\n{trace}" for name, trace in report["failed"].items())
    assert "autopaint_app.core.metrics" in report["imported"]
    assert ("autopaint_app.cli" in report["imported"]) == _cli_exists()
    offenders = [m for m in report["loaded"] if _is_forbidden(m, HEADLESS_FORBIDDEN)]
    print("imported:", ", ".join(report["imported"]))
    print("forbidden modules loaded:", offenders)
    assert offenders == [], f"headless import loaded GUI/torch modules: {offenders}"


# --------------------------------------------------------------------------- static scan
def imported_modules(source: str, module_name: str) -> set[str]:
    """Absolute names of every module ``source`` imports, wherever the import statement sits.

    Relative imports are resolved against ``module_name`` (e.g. ``autopaint_app.core.io``); literal
    ``importlib.import_module("x")`` and ``__import__("x")`` calls count too.
    """
    package_parts = module_name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package_parts[: len(package_parts) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            # `from autopaint_app import training` imports a module too.
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def _package_sources() -> dict[str, set[str]]:
    """Module name -> imported module names, for every ``.py`` file under autopaint_app/."""
    table = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1] + ["__init__"]  # keeps relative-import resolution right for packages
        name = ".".join(parts)
        table[name] = imported_modules(path.read_text(encoding="utf-8"), name)
    return table


def _violations(prefixes: tuple[str, ...], under: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        f"{module} imports {imported}"
        for module, imports in _package_sources().items()
        if module.startswith(under) and module not in allowed
        for imported in imports if _is_forbidden(imported, prefixes))


def test_only_inpaint_model_imports_onnxruntime():
    assert _violations(("onnxruntime",), ("autopaint_app",), allowed=(ONNXRUNTIME_HOME, ONNX_EXPORT_CHECK, ONNX_QUANTIZE_TOOL)) == []


def test_core_and_gui_never_import_torch_or_training():
    under = ("autopaint_app.core", "autopaint_app.gui")
    assert _violations(("torch", "autopaint_app.training"), under) == []


def test_core_never_imports_qt_gui_or_cli():
    forbidden = HEADLESS_FORBIDDEN + ("autopaint_app.gui", "autopaint_app.cli")
    assert _violations(forbidden, ("autopaint_app.core",)) == []


def test_the_scanner_sees_hidden_relative_and_dynamic_imports():
    source = textwrap.dedent("""
        import numpy as np
        from .. import training
        from ..training.networks import UNet
        from . import io
        def later():
            import torch.nn
            importlib.import_module("onnxruntime")
            __import__("PySide6.QtCore")
    """)
    found = imported_modules(source, "autopaint_app.core.autopaint")
    assert {"numpy", "autopaint_app.training", "autopaint_app.training.networks", "autopaint_app.core.io",
            "torch.nn", "onnxruntime", "PySide6.QtCore"} <= found
    assert _is_forbidden("torch.nn", ("torch",)) and not _is_forbidden("torchvision_like", ("torch",))


def test_package_relative_imports_resolve_from_the_package_itself():
    # In autopaint_app/core/__init__.py, `from . import io` means autopaint_app.core.io.
    assert "autopaint_app.core.io" in imported_modules("from . import io\n", "autopaint_app.core.__init__")
