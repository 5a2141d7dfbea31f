"""The public API is small, sorted and guarded."""

import re

import spinereg
import spinereg.instruments

EXPECTED = [
    "DataFileError",
    "DatabaseError",
    "IntegrityConflictError",
    "InvalidInputError",
    "InvalidInputWarning",
    "MappingError",
    "PrivacyError",
    "Problem",
    "SiteKeyError",
    "SourceFileError",
    "SpineregError",
    "StudySpecError",
    "UnknownValueSetError",
    "__version__",
    "eq5d",
    "eqvas",
    "get_instrument",
    "hsdi",
    "lfs",
    "list_instruments",
    "load_wording",
    "lss",
    "nrs",
    "odi",
    "pchc",
    "shannon",
    "valuesets",
]


def test_all_is_sorted_and_exact() -> None:
    assert spinereg.__all__ == sorted(spinereg.__all__)
    assert spinereg.__all__ == EXPECTED


#: exported names that are deliberately another name for the object
ALIASES = {"valuesets": "valueset_catalogue"}


def test_every_name_resolves() -> None:
    """Each exported name is the spinereg function or class of that name (or a listed
    alias), documented; the same object wherever it is exported; data are typed."""
    for module in (spinereg, spinereg.instruments):
        for name in module.__all__:
            obj = vars(module)[name]  # defined in the module's namespace, not found by __getattr__
            if name == "__version__":
                assert isinstance(obj, str)
                assert re.fullmatch(r"\d+\.\d+(\.\d+)?([.-]?(a|b|rc|dev|post)\d*)*(\+[\w.]+)?", obj), obj
                continue
            if name == "DIMENSIONS":
                assert isinstance(obj, tuple) and obj and all(isinstance(d, str) for d in obj), obj
                continue
            assert callable(obj), (module.__name__, name)
            assert obj.__module__.startswith("spinereg."), (module.__name__, name, obj.__module__)
            assert obj.__name__ == ALIASES.get(name, name), (module.__name__, name, obj.__name__)
            assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"
            if name in vars(spinereg.instruments) and module is spinereg:
                assert obj is vars(spinereg.instruments)[name], name
    assert spinereg.instruments.__all__ == sorted(spinereg.instruments.__all__)


def test_errors_share_one_base() -> None:
    for name in ("DataFileError", "InvalidInputError", "UnknownValueSetError"):
        assert issubclass(getattr(spinereg, name), spinereg.SpineregError)


def test_instruments_layer_imports_nothing_outward() -> None:
    """Layers flow one way: instruments import nothing from cli/report/study/data."""
    import ast
    from pathlib import Path

    pkg = Path(spinereg.instruments.__file__).parent
    for path in pkg.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spinereg"):
                assert node.module.startswith(("spinereg.instruments", "spinereg._errors")), (
                    f"{path.name} imports {node.module}")


def test_stats_is_reachable_lazily() -> None:
    assert spinereg.stats.paired_change is not None
    assert spinereg.stats.__all__ == sorted(spinereg.stats.__all__)


def test_study_and_data_layers_never_import_django_or_the_registry() -> None:
    import ast
    from pathlib import Path

    root = Path(spinereg.__file__).parent
    for layer in ("study", "data", "stats", "instruments"):
        for path in (root / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    assert not name.startswith(("django", "spinereg.registry", "spinereg.cli")), (
                        f"{path.relative_to(root)} imports {name}")


def _spinereg_imports(layer: str) -> list[tuple[str, str]]:
    import ast
    from pathlib import Path

    root = Path(spinereg.__file__).parent
    found = []
    for path in (root / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((str(path.relative_to(root)), node.module))
            elif isinstance(node, ast.Import):
                found += [(str(path.relative_to(root)), a.name) for a in node.names]
    return found


def test_each_layer_imports_only_what_lies_to_its_right() -> None:
    """cli -> report -> study -> data -> instruments (stats beside study; registry beside data)."""
    allowed = {
        "instruments": ("spinereg.instruments", "spinereg._errors"),
        "data": ("spinereg.data", "spinereg.instruments", "spinereg._errors", "spinereg._version"),
        "stats": ("spinereg.stats", "spinereg._errors"),
        "study": ("spinereg.study", "spinereg.stats", "spinereg.data", "spinereg.instruments", "spinereg._errors",
                  "spinereg._version"),
        # the report reads results.json only: it never recomputes, so it needs no study code
        "report": ("spinereg.report", "spinereg._errors", "spinereg._version"),
    }
    for layer, prefixes in allowed.items():
        for path, module in _spinereg_imports(layer):
            if module.startswith("spinereg"):
                assert module.startswith(prefixes), f"{path} imports {module}"


def test_error_hierarchy() -> None:
    """Each failure a caller must tell apart has its own class, all under SpineregError."""
    kinds = [spinereg.MappingError, spinereg.SourceFileError, spinereg.PrivacyError,
             spinereg.IntegrityConflictError, spinereg.SiteKeyError, spinereg.DatabaseError,
             spinereg.StudySpecError, spinereg.InvalidInputError, spinereg.UnknownValueSetError,
             spinereg.DataFileError]
    for k in kinds:
        assert issubclass(k, spinereg.SpineregError)
    for a in kinds:
        for b in kinds:
            if a is not b:
                assert not issubclass(a, b), (a, b)
