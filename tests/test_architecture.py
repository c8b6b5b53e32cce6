"""The layering rules of docs/architecture.rst, checked on the source."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from skvqad import VQVAEAnomalyDetector, _parameters
from skvqad._anomaly_map import MAP_TYPES
from skvqad._benchmark import MAP_FACTORS
from skvqad._scoring import pool_maps

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skvqad"
MAX_LINES = 700


def _modules():
    """{dotted name: path} of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(name, path, known):
    """skvqad modules imported anywhere in ``path`` (function level included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # "from . import _x" imports the submodule, not only the package.
            submodules = {f"{target}.{a.name}" for a in node.names} & known
            found |= submodules or ({target} & known)
    found.discard(name)
    return found


def test_no_import_cycle_between_modules():
    modules = _modules()
    graph = {n: _imports(n, p, set(modules)) for n, p in modules.items()}
    # A package's __init__ is its public face: a module importing its own
    # package (``from . import X``) would form a cycle with it, so it counts.
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_the_map_module_is_below_the_estimator():
    modules = _modules()
    imports = _imports(
        "skvqad._anomaly_map", modules["skvqad._anomaly_map"], set(modules)
    )
    assert imports <= {
        "skvqad._continuous_bernoulli",
        "skvqad._maps",
        "skvqad._model",
        "skvqad._parameters",
        "skvqad._scoring",
        "skvqad._validation",
    }
    model = _imports("skvqad._model", modules["skvqad._model"], set(modules))
    assert model <= {"skvqad._continuous_bernoulli"}, model
    path = modules["skvqad._continuous_bernoulli"]
    assert not _imports("skvqad._continuous_bernoulli", path, set(modules))


def _private_calls(path):
    """``obj._method(...)`` calls whose object is not self, cls or super()."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr, owner = node.func.attr, node.func.value
        if not attr.startswith("_") or attr.startswith("__"):
            continue
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
            continue
        calls.append(f"{path.name}:{node.lineno} .{attr}()")
    return calls


@pytest.mark.parametrize(
    "path",
    [*_modules().values(), *sorted((ROOT / "benchmarks").glob("*.py"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_method_called_from_outside(path):
    assert _private_calls(path) == []


@pytest.mark.parametrize("path", _modules().values(), ids=lambda p: p.name)
def test_modules_stay_small(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_parameter_groups_cover_get_params_exactly():
    groups = [
        _parameters.TRAINING,
        _parameters.MAP,
        _parameters.SCORING,
        _parameters.RUNTIME,
    ]
    names = [name for group in groups for name in group]
    assert len(names) == len(set(names)), "a parameter is in two groups"
    assert set(names) == set(VQVAEAnomalyDetector().get_params())
    assert set(_parameters.CONSTRAINTS) == set(names)


def test_docstrings_list_the_parameter_groups():
    doc = " ".join(VQVAEAnomalyDetector.__doc__.split())
    assert _parameters.format_names(_parameters.TRAINING) in doc
    assert "{training}" not in doc and "{post}" not in doc


def test_ablation_varies_map_parameters_only():
    varied = {k for values in MAP_FACTORS.values() for _, p in values for k in p}
    assert varied <= set(_parameters.MAP)


def test_pool_maps_mean_and_max_for_tensors_and_arrays():
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 1, 2] = 8.0
    np.testing.assert_allclose(pool_maps(maps, "mean"), [0.5, 0.0])
    np.testing.assert_allclose(pool_maps(maps, "max"), [8.0, 0.0])
    assert pool_maps(maps, "mean").dtype == np.float64
    pooled = pool_maps(torch.from_numpy(maps), "max")
    assert isinstance(pooled, torch.Tensor) and pooled.dtype == torch.float32
    with pytest.raises(ValueError, match="pooling"):
        pool_maps(maps, "median")


def test_anomaly_map_type_can_be_asked_per_call(fitted_grey, grey_images):
    X = grey_images[:3]
    for map_type in MAP_TYPES:
        expected = fitted_grey.set_params(anomaly_map_type=map_type).anomaly_map(X)
        fitted_grey.set_params(anomaly_map_type="ssim+am")
        np.testing.assert_array_equal(
            fitted_grey.anomaly_map(X, map_type=map_type), expected
        )
    with pytest.raises(ValueError, match="map_type"):
        fitted_grey.anomaly_map(X, map_type="sm")


def test_perplexity_is_recorded_by_a_callback(fitted_grey):
    history = fitted_grey.net_.history
    assert "codebook_perplexity" in dict(fitted_grey.net_.callbacks_)
    batch_values = [b["perplexity"] for b in history[-1, "batches"]]
    assert all(1.0 <= v <= fitted_grey.n_embeddings for v in batch_values)
    assert history[-1, "perplexity"] == pytest.approx(np.mean(batch_values), rel=0.3)
