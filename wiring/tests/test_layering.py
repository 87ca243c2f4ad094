"""`shared/` is the kit every service stands on: it must not import any service (or the wiring)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("catalog", "orders", "logistics", "analytics")
FORBIDDEN = tuple(f"vuonminh.{name}" for name in (*SERVICES, "wiring"))


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_shared_imports_no_service_and_not_the_wiring() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / "shared").rglob("*.py"))
        for name in _imports(path)
        if name == "vuonminh.wiring" or name.startswith(tuple(f"{f}." for f in FORBIDDEN)) or name in FORBIDDEN
    ]
    assert offenders == []


def test_services_do_not_import_each_other() -> None:
    offenders = []
    for service in SERVICES:
        others = tuple(f"vuonminh.{name}" for name in SERVICES if name != service) + ("vuonminh.wiring",)
        for path in sorted((ROOT / "services" / service).rglob("*.py")):
            if "tests" in path.relative_to(ROOT / "services" / service).parts:
                continue  # tests may drive the whole platform through the wiring
            offenders += [
                f"{path.relative_to(ROOT)} imports {name}"
                for name in _imports(path)
                if any(name == other or name.startswith(other + ".") for other in others)
            ]
    assert offenders == []
