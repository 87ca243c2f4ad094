"""The installed package (wheel, container image) must hold every module the checkout has."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(config["packages"]), config["package-dir"]


def test_every_python_package_in_the_tree_is_declared():
    declared, roots = _declared()
    found = set()
    for package, directory in roots.items():
        for init in (ROOT / directory).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / directory)
            if "tests" in relative.parts:
                continue
            found.add(".".join([package, *relative.parts]))
    assert found == declared


def test_the_demo_data_ships_with_the_package():
    from vuonminh.wiring.demo import demo_catalog

    catalog = demo_catalog()
    assert len(catalog["sellers"]) >= 5 and len(catalog["products"]) >= 10
