"""Every YAML file shipped in the repository is valid, alone with its mesh."""

import re
import shlex
from pathlib import Path

import pytest

from chaoskit.config import load_paths, validate, validate_paths
from chaoskit.config.experiment import Experiment
from chaoskit.config.gateway import Gateway
from chaoskit.sources import to_results

ROOT = Path(__file__).resolve().parents[1]
BOOKINFO = ROOT / "experiments" / "bookinfo"
BOOKINFO_MESH = BOOKINFO / "mesh"
VARIANTS = sorted((BOOKINFO / "variants").glob("*.yaml"))
EXPERIMENTS = sorted(BOOKINFO.glob("*.yaml"))
CHECKOUT = ROOT / "experiments" / "checkout-pytest"
CHECKOUT_FILES = sorted(CHECKOUT.rglob("*.yaml"))


def test_bookinfo_mesh_is_valid_without_warnings():
    v = validate_paths([BOOKINFO_MESH])
    assert v.ok and not v.issues, [str(i) for i in v.issues]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda p: p.stem)
def test_each_bookinfo_variant_layers_over_the_mesh(variant):
    v = validate_paths([BOOKINFO_MESH, variant])
    assert v.ok, [str(i) for i in v.issues.errors]


def test_the_checkout_example_and_its_faults_are_valid():
    v = validate_paths([CHECKOUT / "mesh", CHECKOUT / "faults"])
    assert v.ok and not v.issues, [str(i) for i in v.issues]


def load_experiment(path: Path) -> Experiment:
    (experiment,) = [r for r in load_paths([path]).resources if isinstance(r, Experiment)]
    return experiment


def test_there_are_bookinfo_experiments():
    names = {p.stem for p in EXPERIMENTS}
    assert {"fault-injection", "request-timeouts", "circuit-breaking", "outlier-ejection"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_each_bookinfo_experiment_is_valid_with_its_mesh(path):
    """``chaoskit validate EXPERIMENT mesh/``: no errors, no warnings."""
    v = validate_paths([path, BOOKINFO_MESH])
    assert v.ok and not v.issues, [str(i) for i in v.issues]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_each_bookinfo_experiment_resolves_from_its_own_folder(path):
    """Mesh and fault paths are relative to the experiment file; every layer the run will apply
    (the mesh, then each fault phase over it) validates; apps, workloads and gateways exist."""
    exp = load_experiment(path)
    here = path.parent
    assert exp.mesh and exp.faults and exp.apps and exp.traffic is not None
    for rel in [*exp.mesh, *(f for phase in exp.faults for f in phase.files)]:
        assert not Path(rel).is_absolute() and (here / rel).exists(), f"{path.name}: {rel}"
    base = [load_paths([here / rel for rel in exp.mesh])]
    v = validate(base)
    assert v.ok, [str(i) for i in v.issues.errors]
    mesh = v.mesh
    for phase in exp.faults:
        layered = validate(
            [*base, *to_results([here / f for f in phase.files]), *to_results(phase.resources)]
        )
        assert layered.ok, (phase.name, [str(i) for i in layered.issues.errors])

    workloads = set(mesh.workloads_by_name)
    gateway_ports = {
        s.port.number for g in mesh.gateways if isinstance(g, Gateway) for s in g.servers if s.port
    }
    endpoints = {
        int(port)
        for se in mesh.service_entries
        for ep in se.endpoints
        for port in (ep.ports or {}).values()
    }
    for app in exp.apps:
        assert app.workload in workloads, f"{app.name}: no WorkloadEntry {app.workload!r}"
        assert app.command[:3] == ("python", "-m", "chaoskit.demo.bookinfo"), app.command
        port = int(app.command[app.command.index("--port") + 1])
        assert port in endpoints and app.ready == f"http://127.0.0.1:{port}/health", shlex.join(
            app.command
        )
    probes = [p.target for h in (exp.hypothesis, exp.during) if h for p in h.probes]
    for target in [*exp.traffic.targets, *probes]:
        for port in re.findall(r"\$\{gateway:(\d+)\}", target.url):
            assert int(port) in gateway_ports, target.url
        if target.via == "mesh":
            assert target.workload in workloads, target.name


BOOKINFO_KUBE = sorted((BOOKINFO / "kube").glob("*.yaml"))


def test_bookinfo_kube_manifests_validate_with_istios_networking_yaml():
    # the Kubernetes manifests and a LocalWorkloads mapping instead of services.yaml
    networking = [BOOKINFO_MESH / f for f in ("destination-rules.yaml", "virtual-services.yaml")]
    v = validate([load_paths([*BOOKINFO_KUBE, *networking, BOOKINFO_MESH / "gateway.yaml"])])
    assert BOOKINFO_KUBE and not v.issues.errors and not v.issues.warnings, list(v.issues)


def test_every_yaml_file_in_the_repo_is_covered():
    shipped = {
        p
        for p in ROOT.rglob("*.y*ml")
        if ".venv" not in p.parts
        and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)
    }
    covered = (
        set(BOOKINFO_MESH.glob("*.yaml")) | set(VARIANTS) | set(EXPERIMENTS) | set(CHECKOUT_FILES)
    ) | set(BOOKINFO_KUBE)
    # Istio's Bookinfo samples, validated by tests/test_istio_samples.py
    covered |= set((ROOT / "tests" / "data" / "istio-samples").rglob("*.yaml"))
    assert shipped <= covered, sorted(map(str, shipped - covered))
