"""Real readouts of the Image2Reg screen's ORFs (Rohban et al. 2017), one profile per gene.

The screen's over-expression constructs were also measured with other readouts that are
small enough to keep beside the code (the ``orf_rohban2017`` data folder):

* ``l1000``: L1000 expression of the same constructs in U2OS at 72 h (978 landmark genes,
  plate-robust z-scores). A gene's signature is the mean over all its replicate wells (all
  its alleles pooled, as Image2Reg pools them) of each well minus the mean of the
  ``ctl_vector`` wells of its plate. Where an over-expressed gene is itself a landmark, its
  own measurement says which gene it is, so it is removed: by default the landmark columns
  of every target gene of the screen are dropped from every signature (so all profiles keep
  the same features and none carries a target's identity), or ``own_landmark="mask_own"``
  sets only the gene's own landmark to the control level (0) in its own signature.
* ``idr``: the phenotype annotations of the Cell Painting screen (IDR idr0033 screen A), per
  allele: +1 "enriched for" and -1 "de-enriched for" each cell class, cell density as an
  ordinal (normal 0, slightly low -1, low -2) and the morphological cluster one-hot; mean
  over the gene's alleles. Alleles without a phenotype are all-zero rows.
* ``both``: the two blocks side by side, each centred per feature and scaled to mean squared
  row norm 1 over the genes that have both readouts, so each block weighs alike.

Everything here uses the readout files only (no gene network and no ranking); the
statistics of a block are label-free, the same for every held-out gene.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .io import InputError
from .ridge import centre_and_scale

__all__ = [
    "FILES",
    "READOUTS",
    "OWN_LANDMARK",
    "IMAGE2REG_IMPACTFUL",
    "NAMED_GENES",
    "screen_genes",
    "load_l1000",
    "l1000_signatures",
    "own_landmark_check",
    "idr_annotations",
    "idr_profiles",
    "standardise_block",
    "readout_profiles",
]

#: Files of the ``orf_rohban2017`` folder read here.
FILES = {
    "plate_map": "plate_map_augmented_metadata.csv",
    "l1000": "l1000_TAOE_U2OS_zspc_samples_x_978.tsv.gz",
    "l1000_meta": "l1000_TAOE_U2OS_sample_meta.tsv",
    "idr": "idr0033_screenA_processed.tsv",
}
READOUTS = ("l1000", "idr", "both")
OWN_LANDMARK = ("drop_targets", "mask_own")

#: The 41 impactful genes of Image2Reg's screen (published list).
IMAGE2REG_IMPACTFUL = tuple(
    "AKT1S1 ATF4 BAX BCL2L11 BRAF CASP8 CDC42 CDKN1A CEBPA CREB1 CXXC4 DIABLO E2F1 ELK1 ERG "
    "FGFR3 FOXO1 GLI1 HRAS IRAK4 JUN MAP2K3 MAP3K2 MAP3K5 MAP3K9 MAPK7 MOS MYD88 PIK3R2 "
    "PRKACA PRKCE RAF1 RELB RHOA SMAD4 SMO SRC SREBF1 TRAF2 TSC2 WWTR1".split()
)
#: Genes the Image2Reg paper discusses one by one.
NAMED_GENES = ("BRAF", "JUN", "RAF1", "SMAD4", "SREBF1")

_DENSITY = {"normal cell density": 0.0, "slightly low cell density": -1.0, "low cell density": -2.0}


def _file(orf_dir: str | os.PathLike, key: str) -> Path:
    path = Path(orf_dir) / FILES[key]
    if not path.is_file():
        raise InputError(
            f"{path}: file not found; point the readout folder at the orf_rohban2017 data "
            "(shared/data/orf_rohban2017)."
        )
    return path


def _need(df: pd.DataFrame, cols, path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; is this the published file?")


def screen_genes(orf_dir: str | os.PathLike) -> list[str]:
    """Target genes of the Cell Painting screen, from its plate map.

    Parameters
    ----------
    orf_dir : path-like
        The ``orf_rohban2017`` folder.

    Returns
    -------
    list of str
        Sorted upper-case symbols of ``TARGETGENE`` (controls and empty wells have none).
    """
    path = _file(orf_dir, "plate_map")
    plate_map = pd.read_csv(path)
    _need(plate_map, ["TARGETGENE"], path)
    return sorted({str(g).strip().upper() for g in plate_map["TARGETGENE"].dropna()})


def load_l1000(orf_dir: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """L1000 wells: z-scores and their sample metadata, in the same row order.

    Parameters
    ----------
    orf_dir : path-like
        The ``orf_rohban2017`` folder.

    Returns
    -------
    values : pandas.DataFrame
        Wells x 978 landmark genes (columns upper-case symbols), indexed by ``cid``.
    meta : pandas.DataFrame
        ``det_plate``, ``pert_type``, ``gene`` (upper-case ``pert_mfc_desc``) and
        ``allele`` (``x_genesymbol_mutation``) per well, same index.
    """
    vpath, mpath = _file(orf_dir, "l1000"), _file(orf_dir, "l1000_meta")
    values = pd.read_csv(vpath, sep="\t", index_col=0)
    meta = pd.read_csv(mpath, sep="\t")
    _need(meta, ["cid", "det_plate", "pert_type", "pert_mfc_desc", "x_genesymbol_mutation"], mpath)
    meta = meta.set_index("cid")
    missing = values.index.difference(meta.index)
    if len(missing):
        raise InputError(f"{mpath}: no metadata for {len(missing)} wells, e.g. {missing[0]!r}.")
    values.columns = values.columns.astype(str).str.upper()
    meta = meta.loc[values.index]
    out = pd.DataFrame(
        {
            "det_plate": meta["det_plate"],
            "pert_type": meta["pert_type"],
            "gene": meta["pert_mfc_desc"].astype(str).str.upper(),
            "allele": meta["x_genesymbol_mutation"],
        }
    )
    return values.astype(float), out


def _raw_signatures(orf_dir) -> tuple[pd.DataFrame, pd.Series]:
    """Gene x landmark signatures before any removal, and the wells per gene."""
    values, meta = load_l1000(orf_dir)
    ctl = meta["pert_type"] == "ctl_vector"
    if not ctl.any():
        raise InputError(f"{_file(orf_dir, 'l1000_meta')}: no ctl_vector wells to subtract.")
    ctl_mean = values[ctl].groupby(meta.loc[ctl, "det_plate"]).mean()
    trt = meta["pert_type"] == "trt_oe"
    plates = meta.loc[trt, "det_plate"]
    if not plates.isin(ctl_mean.index).all():
        raise InputError("an L1000 plate has treated wells but no ctl_vector well.")
    delta = values[trt] - ctl_mean.loc[plates].to_numpy()
    sig = delta.groupby(meta.loc[trt, "gene"]).mean().sort_index()
    return sig, meta.loc[trt, "gene"].value_counts().reindex(sig.index)


def l1000_signatures(
    orf_dir: str | os.PathLike, own_landmark: str = "drop_targets", targets=()
) -> pd.DataFrame:
    """One L1000 signature per over-expressed gene (wells minus their plate's vector controls).

    Parameters
    ----------
    orf_dir : path-like
        The ``orf_rohban2017`` folder.
    own_landmark : {"drop_targets", "mask_own"}
        How a gene's own landmark measurement is removed: drop the landmark columns of every
        over-expressed gene (and of ``targets``) from every signature, or set the gene's own
        column to 0 (the control level) in its own signature only.
    targets : iterable of str
        Further target genes whose landmark columns are dropped (``drop_targets``), e.g.
        the screen's genes that have no L1000 wells.

    Returns
    -------
    pandas.DataFrame
        Genes (index ``gene``, upper case, sorted) x landmark features (``l1000_<SYMBOL>``);
        ``attrs["n_wells"]`` is the number of wells per gene and ``attrs["removed"]`` the
        landmark symbols removed.
    """
    if own_landmark not in OWN_LANDMARK:
        raise InputError(f"unknown own_landmark {own_landmark!r}; choose one of {OWN_LANDMARK}")
    sig, n_wells = _raw_signatures(orf_dir)
    genes = sig.index.tolist()
    if own_landmark == "drop_targets":
        drop = set(genes) | {str(t).upper() for t in targets}
        removed = sorted(drop & set(sig.columns))
        sig = sig.drop(columns=removed)
    else:
        removed = sorted(set(genes) & set(sig.columns))
        for g in removed:
            sig.loc[g, g] = 0.0
    sig.columns = [f"l1000_{c}" for c in sig.columns]
    sig.index.name = "gene"
    sig.attrs.update(n_wells=n_wells.to_dict(), removed=removed, own_landmark=own_landmark)
    return sig


def own_landmark_check(orf_dir: str | os.PathLike) -> pd.DataFrame:
    """How plainly a landmark gene's own measurement names it, before removal.

    Parameters
    ----------
    orf_dir : path-like
        The ``orf_rohban2017`` folder.

    Returns
    -------
    pandas.DataFrame
        One row per over-expressed gene that is a landmark: ``own`` (its signature's value
        at its own landmark), ``others_mean`` and ``others_sd`` (the other genes' values
        there) and ``own_rank`` (rank of ``own`` among all genes' values, 1 = highest).
    """
    sig, _ = _raw_signatures(orf_dir)
    rows = []
    for g in sig.index.intersection(sig.columns):
        others = sig[g].drop(g)
        rank = int((sig[g] > sig.loc[g, g]).sum()) + 1
        rows.append((g, sig.loc[g, g], others.mean(), others.std(), rank))
    cols = ["gene", "own", "others_mean", "others_sd", "own_rank"]
    return pd.DataFrame(rows, columns=cols)


def idr_annotations(orf_dir: str | os.PathLike) -> pd.DataFrame:
    """Phenotype-annotation vector of every allele of the Cell Painting screen.

    Parameters
    ----------
    orf_dir : path-like
        The ``orf_rohban2017`` folder.

    Returns
    -------
    pandas.DataFrame
        Alleles x features with ``gene`` (upper case) and ``allele`` columns; features
        ``idr_<cell class>`` (+1 enriched, -1 de-enriched, 0 neither),
        ``idr_cell_density`` (0, -1 slightly low, -2 low) and ``idr_cluster_<id>`` (1 for
        the allele's morphological cluster).
    """
    path = _file(orf_dir, "idr")
    raw = pd.read_csv(path, sep="\t")
    _need(raw, ["Gene Symbol", "Gene Allele Name", "Morphological Cluster ID"], path)
    pheno = [c for c in raw.columns if str(c).startswith("Phenotype ") and c[-1].isdigit()]
    feats: dict[str, np.ndarray] = {}
    for col in pheno:
        for i, text in raw[col].items():
            if not isinstance(text, str) or not text.strip():
                continue
            text = text.strip()
            if text in _DENSITY:
                key, val = "idr_cell_density", _DENSITY[text]
            elif text.startswith(("enriched for ", "de-enriched for ")):
                sign, cls = text.split(" for ", 1)
                key, val = f"idr_{cls.replace(' ', '_')}", 1.0 if sign == "enriched" else -1.0
            else:
                raise InputError(f"{path}: unknown phenotype annotation {text!r} in {col!r}.")
            feats.setdefault(key, np.zeros(len(raw)))[i] = val
    table = pd.DataFrame(dict(sorted(feats.items())), index=raw.index)
    cluster = pd.to_numeric(raw["Morphological Cluster ID"], errors="coerce")
    onehot = pd.get_dummies(cluster.dropna().astype(int), prefix="idr_cluster", dtype=float)
    table = table.join(onehot.reindex(raw.index).fillna(0.0))
    table.insert(0, "allele", raw["Gene Allele Name"].astype(str))
    table.insert(0, "gene", raw["Gene Symbol"].astype(str).str.strip().str.upper())
    return table


def idr_profiles(orf_dir: str | os.PathLike) -> pd.DataFrame:
    """IDR phenotype-annotation profile per gene: the mean over its alleles.

    Parameters
    ----------
    orf_dir : path-like
        The ``orf_rohban2017`` folder.

    Returns
    -------
    pandas.DataFrame
        Genes (index ``gene``, sorted) x ``idr_*`` features; ``attrs["n_alleles"]``.
    """
    ann = idr_annotations(orf_dir)
    prof = ann.drop(columns="allele").groupby("gene").mean().sort_index()
    prof.attrs["n_alleles"] = ann["gene"].value_counts().reindex(prof.index).to_dict()
    return prof


def standardise_block(block: pd.DataFrame) -> pd.DataFrame:
    """Centre every feature and scale the block to mean squared row norm 1.

    Parameters
    ----------
    block : pandas.DataFrame
        Rows x features of one readout.

    Returns
    -------
    pandas.DataFrame
        ``(block - mean) / rms`` with ``rms`` the root-mean-square norm of the centred
        rows (:func:`i2r_utils.ridge.centre_and_scale`, global).
    """
    mu, sd = centre_and_scale(block.to_numpy(float), "global")
    return (block - mu) / sd


def readout_profiles(
    orf_dir: str | os.PathLike, readout: str = "l1000", own_landmark: str = "drop_targets"
) -> pd.DataFrame:
    """Per-gene readout profiles of the screen's ORFs.

    Parameters
    ----------
    orf_dir : path-like
        The ``orf_rohban2017`` folder.
    readout : {"l1000", "idr", "both"}
        Which readout (see the module docstring).
    own_landmark : {"drop_targets", "mask_own"}
        L1000 only: how a gene's own landmark measurement is removed
        (:func:`l1000_signatures`; the targets are the plate map's genes and the L1000
        genes).

    Returns
    -------
    pandas.DataFrame
        Genes (index ``gene``, upper case, sorted) x features (``l1000_*`` and/or ``idr_*``).
        ``both`` keeps the genes with both readouts, each block standardised
        (:func:`standardise_block`).
    """
    if readout not in READOUTS:
        raise InputError(f"unknown readout {readout!r}; choose one of {READOUTS}")
    blocks = []
    if readout in ("l1000", "both"):
        blocks.append(l1000_signatures(orf_dir, own_landmark, screen_genes(orf_dir)))
    if readout in ("idr", "both"):
        blocks.append(idr_profiles(orf_dir))
    if len(blocks) == 1:
        return blocks[0]
    common = blocks[0].index.intersection(blocks[1].index)
    out = pd.concat([standardise_block(b.loc[common]) for b in blocks], axis=1)
    out.index.name = "gene"
    return out
