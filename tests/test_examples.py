"""The gallery examples run end to end (they are small and CPU-only)."""

import runpy
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, capsys):
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert "ROC-AUC" in out


def test_grid_search_example_reuses_networks(capsys):
    path = next(p for p in EXAMPLES if p.stem == "plot_grid_search")
    runpy.run_path(str(path), run_name="__main__")
    assert "12 fits, 4 networks trained" in capsys.readouterr().out
