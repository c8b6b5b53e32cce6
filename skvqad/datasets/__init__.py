"""Datasets: the built-in texture-defect data and loaders for local folders."""

from ._texture import make_texture_defects

__all__ = ["make_texture_defects"]
