"""The gallery examples run end to end (they are small and CPU-only)."""

import runpy
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))

#: Examples that need an optional extra: the module to skip without.
EXTRAS = {"plot_dask_grid_search": "distributed"}

#: What an example must print, checked in the same run.
PRINTS = {"plot_dask_grid_search": ", 4 networks in the cache"}


def test_the_gallery_has_six_examples_or_more():
    assert len(EXAMPLES) >= 6, [p.name for p in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_draws(path, capsys):
    import matplotlib.pyplot as plt

    if path.stem in EXTRAS:
        pytest.importorskip(EXTRAS[path.stem])
    plt.close("all")
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert out.strip(), "an example prints what it found"
    assert PRINTS.get(path.stem, "") in out
    figures = [plt.figure(n) for n in plt.get_fignums()]
    assert figures, "every gallery example draws a figure"
    drawn = [
        ax.get_images() or ax.lines or ax.patches or ax.collections
        for fig in figures
        for ax in fig.axes
    ]
    assert any(drawn), "the figure shows something"
    plt.close("all")


def test_grid_search_example_reuses_networks(capsys):
    path = next(p for p in EXAMPLES if p.stem == "plot_grid_search")
    runpy.run_path(str(path), run_name="__main__")
    assert "12 fits, 4 networks trained" in capsys.readouterr().out
