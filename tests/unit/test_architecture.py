"""Import rules of the core package, read from its source with ``ast`` (nothing is imported).

- only ``regvault/aws/**`` talks to boto3/botocore (the AWS boundary);
- ``regvault/storage/**`` depends on nothing of regvault but itself and ``regvault.errors``;
- the core never imports the test tooling (``harness``, outside the wheel and the layer);
- no core module grows beyond 400 lines;
- storage, images, audit, restore, garbage, usage, repair and reports never import aws/, cli/ or
  lambda_edge/;
- every third-party package the core imports is declared in pyproject.toml, and the Lambda layer's
  requirements carry every one its modules (all but cli/) import.

Each failure lists the offending modules (and lines).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import cache
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "layers" / "regvault"
PACKAGE = CORE / "regvault"
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    """The module's path from the package, e.g. ``regvault/aws/s3.py``."""
    return path.relative_to(CORE).as_posix()


@cache
def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """Every import statement of the module, function-local ones included: (line, absolute module
    names); ``from package import name`` names ``package`` and ``package.name`` (it may be a module)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.relative_to(CORE).with_suffix("").parts[:-1]
    out: list[tuple[int, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            parts = list(package[: len(package) - node.level + 1]) if node.level else []
            base = ".".join(parts + ([node.module] if node.module else []))
            out.append((node.lineno, [base] + [f"{base}.{a.name}" for a in node.names if a.name != "*"]))
    return sorted(out)


def _offending(paths: list[Path], forbidden: Callable[[str], bool]) -> list[str]:
    """``module:line imports name`` for each import statement that names a forbidden module."""
    out = []
    for path in paths:
        for line, names in _imports(path):
            bad = [name for name in names if forbidden(name)]
            if bad:
                out.append(f"{_name(path)}:{line} imports {bad[0]}")
    return out


def _top(module: str) -> str:
    return module.split(".", 1)[0]


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_modules_are_found():
    names = {_name(p) for p in _modules()}
    assert {"regvault/aws/s3.py", "regvault/storage/store.py", "regvault/errors.py"} <= names


def test_only_the_aws_package_imports_boto3_or_botocore():
    outside = [p for p in _modules() if not _name(p).startswith("regvault/aws/")]
    offending = _offending(outside, lambda m: _top(m) in ("boto3", "botocore"))
    assert offending == [], "the AWS boundary is regvault/aws: " + "; ".join(offending)


def test_storage_depends_only_on_itself_and_the_domain_errors():
    storage = [p for p in _modules() if _name(p).startswith("regvault/storage/")]
    offending = _offending(
        storage,
        lambda m: (
            _in(m, "regvault")
            and m != "regvault"  # ``from regvault import errors``: the names imported are checked instead
            and not _in(m, "regvault.storage")
            and not _in(m, "regvault.errors")
        ),
    )
    assert offending == [], "regvault/storage may import regvault.storage.* and regvault.errors only: " + (
        "; ".join(offending)
    )


def test_the_core_never_imports_the_harness():
    offending = _offending(_modules(), lambda m: _top(m) == "harness")
    assert offending == [], "the harness is test tooling, outside the wheel and the layer: " + (
        "; ".join(offending)
    )


def _line_counts() -> dict[str, int]:
    return {_name(path): len(path.read_text().splitlines()) for path in _modules()}


def _oversize() -> list[str]:
    return [f"{name} ({count} lines)" for name, count in sorted(_line_counts().items()) if count > MAX_LINES]


def test_no_module_exceeds_400_lines():
    offending = _oversize()
    assert offending == [], f"modules over {MAX_LINES} lines: " + "; ".join(offending)


def test_capabilities_reach_aws_only_through_ports_and_never_call_the_edges():
    """storage, images, audit, restore, garbage, usage, repair and reports take a store (a Protocol), never an
    aws/ type; no
    core module outside cli/ imports cli/ (the edges call the core, not the other way round)."""
    pure = (
        "regvault/storage/",
        "regvault/images/",
        "regvault/audit/",
        "regvault/restore/",
        "regvault/garbage/",
        "regvault/usage/",
        "regvault/repair/",
        "regvault/reports/",
    )
    modules = [p for p in _modules() if _name(p).startswith(pure)]
    offending = _offending(
        modules, lambda m: m.startswith(("regvault.aws", "regvault.cli", "regvault.lambda_edge"))
    )
    outside_cli = [p for p in _modules() if not _name(p).startswith("regvault/cli/")]
    offending += _offending(outside_cli, lambda m: m.startswith("regvault.cli"))
    assert offending == [], "; ".join(offending)


# import name -> distribution name, for the third-party packages the core may use
DISTRIBUTIONS = {
    "boto3": "boto3",
    "botocore": "botocore",
    "pydantic": "pydantic",
    "bcrypt": "bcrypt",
    "cryptography": "cryptography",
    "rich": "rich",
}


def _third_party(paths: list[Path]) -> dict[str, str]:
    """Top-level third-party imports -> the first module that imports each."""
    import sys

    out: dict[str, str] = {}
    for path in paths:
        for _, names in _imports(path):
            top = _top(names[0])
            if top and top != "regvault" and top not in sys.stdlib_module_names and top != "__future__":
                out.setdefault(top, _name(path))
    return out


def _requirement_names(lines: list[str]) -> set[str]:
    import re

    return {re.split(r"[<>=\[ ;]", line.strip(), maxsplit=1)[0].lower() for line in lines if line.strip()}


def test_the_core_declares_what_it_imports():
    import tomllib

    pyproject = tomllib.loads((CORE.parents[1] / "pyproject.toml").read_text())
    declared = _requirement_names(pyproject["project"]["dependencies"]) | {"botocore"}  # boto3 brings it
    used = _third_party(_modules())
    unknown = sorted(set(used) - set(DISTRIBUTIONS))
    assert unknown == [], f"new third-party imports, add them to DISTRIBUTIONS and pyproject: {unknown}"
    missing = sorted(
        f"{DISTRIBUTIONS[m]} (imported by {where})"
        for m, where in used.items()
        if DISTRIBUTIONS[m] not in declared
    )
    assert missing == [], "not in pyproject's dependencies: " + "; ".join(missing)


def test_the_layer_ships_what_its_modules_import():
    layer = [p for p in _modules() if not _name(p).startswith("regvault/cli/")]
    lines = (CORE / "requirements.txt").read_text().splitlines()
    pinned = _requirement_names([line for line in lines if not line.lstrip().startswith("#")])
    used = _third_party(layer)
    missing = sorted(
        f"{DISTRIBUTIONS.get(m, m)} (imported by {where})"
        for m, where in used.items()
        if DISTRIBUTIONS.get(m, m) not in pinned
    )
    assert missing == [], "the layer lacks: " + "; ".join(missing)
    makefile = (CORE / "Makefile").read_text()
    assert 'rm -rf "$(ARTIFACTS_DIR)/python/regvault/cli"' in makefile, (
        "the layer would ship cli/ without rich"
    )
