"""Fetch the public data of Image2Reg: resumable, checksummed downloads and safe extraction.

Two public sources are covered:

* the Image2Reg demo data on Zenodo (DOI ``10.5281/zenodo.8354979``), one zip archive
  (:mod:`.image2reg`);
* the raw images of Rohban et al. 2017 (``cpg0017-rohban-pathways``) in the public,
  anonymous S3 bucket ``cellpainting-gallery`` of the Cell Painting Gallery (:mod:`.cpg`).

Modules: :mod:`.partfile` (the ``.part`` file a download resumes, verified before it is
moved into place), :mod:`.http` (HTTP downloads), :mod:`.s3` (anonymous S3 listing and
downloads), :mod:`.archive` (safe extraction), :mod:`.platemap` (plate maps and image file
names), :mod:`.image2reg`, :mod:`.cpg` and :mod:`.cli` (``python3 run_all.py data ...``,
whose entry point is :func:`main`). Checksums, table and JSON writing and the one error type,
:class:`i2r_utils.io.InputError`, come from :mod:`i2r_utils.io`. Nothing here touches the
network at import time; ``boto3`` is imported only when S3 is used.
"""

from .cli import main

__all__ = ["main"]
