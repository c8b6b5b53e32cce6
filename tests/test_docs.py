"""The documentation builds with Sphinx, warnings as errors (issue 15).

The gallery's examples are not executed here (``plot_gallery=0``): each is
run by ``tests/test_examples.py``. Intersphinx is off (no network in CI).
The build works on a copy of ``docs/`` and ``examples/``, so the
repository tree is left as it was.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("sphinx")
pytest.importorskip("sphinx_gallery")
pytest.importorskip("numpydoc")


def test_docs_build_without_warnings(tmp_path):
    for folder in ("docs", "examples"):
        shutil.copytree(
            ROOT / folder,
            tmp_path / folder,
            ignore=shutil.ignore_patterns("_build", "generated", "auto_examples"),
        )
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
         "-D", "plot_gallery=0", str(tmp_path / "docs"), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        env={**os.environ, "SKVQAD_DOCS_OFFLINE": "1", "MPLBACKEND": "Agg"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    pages = {p.name for p in (tmp_path / "html" / "generated").glob("*.html")}
    assert "skvqad.VQVAEAnomalyDetector.html" in pages
    gallery = tmp_path / "html" / "auto_examples" / "index.html"
    assert gallery.is_file()
