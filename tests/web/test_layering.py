"""The explorer is a thin layer: it calls the library and never does the maths itself.

Every module of ``seethrough.web`` is parsed: it must not import ``torch.autograd``,
``torch.nn.functional``, projection or statistics libraries, call ``.backward()``, or import
from ``seethrough`` anything outside the allow-list of public functions and helpers below. A
new method in a registry reaches the page through these imports with no web change.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import seethrough.web as web

ALLOWED_FROM_SEETHROUGH = {
    "seethrough": {"__version__", "render", "zoo"},
    "seethrough._version": {"__version__"},  # the version's own module: importing it from seethrough was a cycle
    "seethrough.adversarial": {"ATTACKS", "attack"},
    "seethrough.attribution": {"METHODS", "attribute"},
    "seethrough.catalog": {"entries", "get", "register_family"},  # every entry's spec: the menus' options and their checks (issue 19)
    "seethrough.spec": {"Option", "Spec"},
    "seethrough.embed": {"METHODS", "embed", "max_perplexity", "nearest"},
    "seethrough.inspect": {"activations", "crops", "filters", "pick_channels", "topk", "summary"},
    "seethrough.optimize": {"visualize"},
    "seethrough.predict": {"predict"},
    "seethrough.progress": {"Cancelled", "listen", "report"},
    "seethrough.scan.atlas": {"unit_page_data", "check_model"},  # the unit atlas page data; the scanned weights' check
    "seethrough.scan.views": {"as_result"},  # a stored scan (folder or result), read for the unit view and projector
    "seethrough.zoo": {"to_image", "to_rgb"},
    "seethrough.text": {"attention_maps", "probe"},  # the text view: attention maps, the probe curves
    "seethrough.text.explain": {"ATTENTION_METHODS", "explain_text"},  # a sentence's tokens scored by a method
    "seethrough.zoo.text": {"similarity"},  # minilm-l6's cosine with the pair sentence, on the session's own encoder
}
FORBIDDEN_MODULES = ("torch.autograd", "torch.nn.functional", "torch.func", "sklearn", "openTSNE", "umap", "scipy",
                     "numpy.linalg", "captum")
FORBIDDEN_CALLS = {"backward", "grad", "softmax", "log_softmax", "cdist", "svd", "pca_lowrank", "topk", "argmax"}


def _modules() -> list[Path]:
    root = Path(web.__file__).parent
    return sorted(root.glob("*.py"))


def _absolute(module: str | None, level: int, package: str = "seethrough.web") -> str:
    if level == 0:
        return module or ""
    base = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join(base + ([module] if module else []))


def test_every_web_module_is_checked():
    names = {p.stem for p in _modules()}
    assert {"app", "cache", "jobs", "server", "session", "uploads", "views"} <= names
    for info in pkgutil.iter_modules(web.__path__):
        importlib.import_module(f"seethrough.web.{info.name}")


def test_web_imports_only_public_library_functions_and_no_maths():
    problems = []
    for path in _modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith(FORBIDDEN_MODULES):
                        problems.append(f"{path.name}: import {alias.name}")
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node.module, node.level)
                if module.startswith(FORBIDDEN_MODULES):
                    problems.append(f"{path.name}: from {module} import …")
                if module.startswith("seethrough") and not module.startswith("seethrough.web"):
                    allowed = ALLOWED_FROM_SEETHROUGH.get(module, set())
                    for alias in node.names:
                        if alias.name not in allowed:
                            problems.append(f"{path.name}: from {module} import {alias.name} (not in the allow-list)")
            elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_CALLS:
                problems.append(f"{path.name}:{node.lineno}: .{node.attr} (maths belongs in the library)")
            elif isinstance(node, ast.Attribute) and node.attr == "autograd":
                problems.append(f"{path.name}:{node.lineno}: torch.autograd")
    assert not problems, "\n".join(problems)


def test_the_checker_catches_what_it_forbids(tmp_path, monkeypatch):
    """The layering test above must be able to fail: a module doing its own maths is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("import torch.autograd\nfrom seethrough.attribution.gradient import integrated_gradients\n"
                   "def saliency(model, x):\n    x.requires_grad_()\n    model(x).max().backward()\n    return x.grad\n")
    monkeypatch.setattr(sys.modules[__name__], "_modules", lambda: [bad])
    try:
        test_web_imports_only_public_library_functions_and_no_maths()
    except AssertionError as e:
        text = str(e)
    else:
        raise AssertionError("the layering check passed a module that computes gradients itself")
    assert "import torch.autograd" in text and "integrated_gradients" in text and ".backward" in text and ".grad" in text


def test_the_core_library_does_not_import_the_web_stack():
    import subprocess
    import sys

    code = "import sys, seethrough; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'multipart') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
