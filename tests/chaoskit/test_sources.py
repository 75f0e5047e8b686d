import pytest

from chaoskit.config.loader import load_text
from chaoskit.errors import ConfigError
from chaoskit.sources import to_results, validated

SE = (
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: web}\n"
    "spec: {hosts: [web], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, "
    "endpoints: [{address: 127.0.0.1}]}\n"
)


def test_every_kind_of_source(tmp_path):
    path = tmp_path / "se.yaml"
    path.write_text(SE)
    as_dict = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {"name": "caller"},
        "spec": {"labels": {"app": "caller"}},
    }
    (resource,) = load_text(SE).resources
    for source in (str(path), path, SE, as_dict, resource, [SE]):
        results = to_results([source])
        assert sum(len(r.resources) for r in results) == 1


def test_errors_raise_config_error_with_every_issue():
    with pytest.raises(ConfigError) as info:
        validated(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [x], http: [{timeout: 0s}]}\n"
        )
    assert len(info.value.issues) >= 2
    with pytest.raises(TypeError):
        to_results([42])
