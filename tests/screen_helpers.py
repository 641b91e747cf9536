"""Test-only helper: a small screen folder made of the first images of the tiny screen."""

from pathlib import Path

import pandas as pd


def small_screen(tiny_screen: Path, dest: Path, n: int = 6, masks: bool = True, **edit) -> Path:
    """Write a metadata table of the first ``n`` images of ``tiny_screen``, edited, to ``dest``.

    Image and mask paths are made absolute (the images stay where they are); ``masks=False``
    drops the mask column; each keyword replaces a column with the given values.
    """
    meta = pd.read_csv(tiny_screen / "metadata.csv").head(n)
    for col in ("Metadata_ImagePath", "Metadata_MaskPath"):
        meta[col] = [str(tiny_screen / p) for p in meta[col]]
    if not masks:
        meta = meta.drop(columns="Metadata_MaskPath")
    for col, values in edit.items():
        meta[col] = values
    dest.mkdir(parents=True, exist_ok=True)
    meta.to_csv(dest / "metadata.csv", index=False)
    return dest
