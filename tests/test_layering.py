"""Layers flow one way, and no layer reaches into another's private modules.

web/cli -> report -> study -> registry -> data -> instruments/stats.  Each layer
exports what the next one uses from its package ``__init__``; a module
``spinereg.<layer>._name`` is private to ``<layer>``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import spinereg

ROOT = Path(spinereg.__file__).parent
LAYERS = ("instruments", "stats", "data", "registry", "study", "report", "cli")
#: the web layer's packages: the staff web app, the follow-up app, the FHIR library and its API app
APPS = ("web", "followup", "fhir", "fhir_api")


def imports(layer: str) -> list[tuple[str, str]]:
    found = []
    for path in (ROOT / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((str(path.relative_to(ROOT)), node.module))
            elif isinstance(node, ast.Import):
                found += [(str(path.relative_to(ROOT)), a.name) for a in node.names]
    return found


def test_no_layer_imports_another_layers_private_module() -> None:
    bad = []
    for layer in (*LAYERS, *APPS):
        for path, module in imports(layer):
            parts = module.split(".")
            if parts[0] != "spinereg" or len(parts) < 3 or parts[1] == layer:
                continue
            if parts[1] in (*LAYERS, *APPS) and parts[2].startswith("_"):
                bad.append(f"{path} imports {module}")
    assert bad == []


def test_registry_cli_and_web_import_only_what_lies_to_their_right() -> None:
    allowed = {
        "registry": ("spinereg.registry", "spinereg.data", "spinereg.instruments", "spinereg._errors",
                     "spinereg._version"),
        "cli": tuple(f"spinereg.{x}" for x in (*LAYERS, *APPS, "_errors", "_version")),
        **{app: tuple(f"spinereg.{x}" for x in (*LAYERS, *APPS, "_errors", "_version") if x != "cli")
           for app in APPS},
        # the FHIR library converts resources to and from tidy rows: no registry, no Django
        "fhir": ("spinereg.fhir", "spinereg.data", "spinereg.instruments", "spinereg._errors", "spinereg._version"),
    }
    for layer, prefixes in allowed.items():
        for path, module in imports(layer):
            if module.startswith("spinereg."):  # the top-level package (its errors) is open to all
                assert module.startswith(prefixes), f"{path} imports {module}"
    # nothing below the registry imports it (the study engine never does)
    for layer in ("instruments", "stats", "data", "study", "report"):
        for path, module in imports(layer):
            assert not module.startswith(("spinereg.registry", "spinereg.cli", "spinereg.web", "spinereg.followup",
                                          "spinereg.fhir", "django")), \
                f"{path} imports {module}"
