"""Every YAML file shipped in the repository is valid, alone with its mesh."""

from pathlib import Path

import pytest

from chaoskit.config import validate_paths

ROOT = Path(__file__).resolve().parents[1]
BOOKINFO_MESH = ROOT / "experiments" / "bookinfo" / "mesh"
VARIANTS = sorted((ROOT / "experiments" / "bookinfo" / "variants").glob("*.yaml"))


def test_bookinfo_mesh_is_valid_without_warnings():
    v = validate_paths([BOOKINFO_MESH])
    assert v.ok and not v.issues, [str(i) for i in v.issues]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda p: p.stem)
def test_each_bookinfo_variant_layers_over_the_mesh(variant):
    v = validate_paths([BOOKINFO_MESH, variant])
    assert v.ok, [str(i) for i in v.issues.errors]


def test_every_yaml_file_in_the_repo_is_covered():
    shipped = {
        p
        for p in ROOT.rglob("*.y*ml")
        if ".venv" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    }
    covered = set(BOOKINFO_MESH.glob("*.yaml")) | set(VARIANTS)
    assert shipped <= covered, sorted(map(str, shipped - covered))
