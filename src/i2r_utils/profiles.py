"""Profiles: nucleus -> image (median) -> well (mean) -> condition (mean); batch correction.

Tables follow the ``Metadata_`` convention; features are all other columns.

Batch correction (:func:`fit_sphering`, :class:`Sphering`): every plate is standardised to
its control wells (``columns.CONTROL``), then a ZCA sphering transform fitted on the control
wells is applied (as pycytominer's ``Spherize(method="ZCA")``, tested against it; or in
DeepProfiler's convention, :mod:`i2r_utils.whitening`). The fitted
transform is saved as ``.npz`` (:meth:`Sphering.save`) and loaded with
:func:`load_sphering`, so new images can be profiled in the same space.
:func:`strong_perturbations` ranks conditions by phenotype strength (thesis Algorithm 1).

The translation reads its condition profiles through :func:`translation_profiles`: the
trained encoder's (``"cnn"``, one space per fold), the hand-crafted features'
(``"features"``) or both side by side (``"both"``, :func:`combine_blocks`: each sphered
block divided by the square root of its dimension, so both weigh alike whatever their
sizes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .columns import CONTROL, feature_columns, get_metadata
from .io import InputError, atomic_path, read_table
from .whitening import SPHERING_CONVENTIONS, zca_whitening

__all__ = [
    "IMAGE_KEYS",
    "WELL_KEYS",
    "aggregate",
    "well_profiles",
    "condition_means",
    "SPHERING_CONVENTIONS",
    "zca_whitening",
    "Sphering",
    "fit_sphering",
    "load_sphering",
    "strong_perturbations",
    "ProfileSet",
    "build_profiles",
    "REPRESENTATIONS",
    "CONDITION_EMBEDDINGS",
    "nucleus_means",
    "combine_blocks",
    "combine_representation",
    "translation_profiles",
]

WELL_KEYS = ["Metadata_Plate", "Metadata_Well", "Metadata_Condition"]
IMAGE_KEYS = WELL_KEYS + ["Metadata_Site"]


def aggregate(df: pd.DataFrame, by: list[str], how: str = "mean") -> pd.DataFrame:
    """Aggregate the features of ``df`` over groups of metadata columns.

    Parameters
    ----------
    df : pandas.DataFrame
        Profiling table.
    by : list of str
        Metadata columns defining the groups (kept in the output).
    how : {"mean", "median"}
        Aggregation.

    Returns
    -------
    pandas.DataFrame
        One row per group, with ``Metadata_Count`` (rows aggregated).
    """
    feats = feature_columns(df)
    g = df.groupby(by, sort=True, observed=True)
    out = getattr(g[feats], how)()
    out.insert(0, "Metadata_Count", g.size())
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# profiles for the fold spaces: raw well profiles, condition means
# --------------------------------------------------------------------------------------------


def well_profiles(nuclei: pd.DataFrame) -> pd.DataFrame:
    """Raw well profiles: nucleus -> image (median) -> well (mean), no normalisation.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        One row per nucleus with ``IMAGE_KEYS`` metadata (``Metadata_Site`` optional) and
        features; other metadata columns are ignored.

    Returns
    -------
    pandas.DataFrame
        ``WELL_KEYS``, ``Metadata_Images``, ``Metadata_Nuclei`` and the features (float64).
    """
    missing = [c for c in WELL_KEYS if c not in nuclei.columns]
    if missing:
        raise InputError(f"profiling table lacks metadata columns {missing}")
    keys = [c for c in IMAGE_KEYS if c in nuclei.columns]
    feats = feature_columns(nuclei)
    images = aggregate(nuclei[keys + feats], keys, "median")
    wells = aggregate(images.drop(columns="Metadata_Count"), WELL_KEYS, "mean")
    wells = wells.rename(columns={"Metadata_Count": "Metadata_Images"})
    n = nuclei.groupby(WELL_KEYS, observed=True).size().rename("Metadata_Nuclei").reset_index()
    wells = wells.merge(n, on=WELL_KEYS)
    meta = WELL_KEYS + ["Metadata_Images", "Metadata_Nuclei"]
    return wells[meta + feats].astype({f: np.float64 for f in feats})


def condition_means(wells: pd.DataFrame) -> pd.DataFrame:
    """Condition profiles: the mean of their well profiles.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles (``Metadata_Condition``, optional ``Metadata_Nuclei``, features).

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Condition``, ``Metadata_Wells``, ``Metadata_Nuclei`` (when known) and the
        features, one row per condition (sorted).
    """
    feats = feature_columns(wells)
    g = wells.groupby("Metadata_Condition", sort=True, observed=True)
    meta = {"Metadata_Wells": g.size()}
    if "Metadata_Nuclei" in wells:
        meta["Metadata_Nuclei"] = g["Metadata_Nuclei"].sum()
    out = pd.concat([pd.DataFrame(meta), g[feats].mean()], axis=1)
    return out.reset_index()


# --------------------------------------------------------------------------------------------
# batch correction: ZCA sphering fitted on control wells
# --------------------------------------------------------------------------------------------


@dataclass
class Sphering:
    """A fitted batch correction: per-plate standardisation to controls, then ZCA.

    Step 1 centres each plate on its own control wells (when the table has some on that
    plate; else on the pooled control mean ``ctl_mean``) and divides by the pooled
    within-plate control standard deviation ``ctl_sd``. Step 2 applies the ZCA transform
    fitted on the standardised control wells (:func:`zca_whitening`, in the ``convention``
    of :data:`SPHERING_CONVENTIONS`).

    ``mean`` and ``W`` give the whole transform as one affine map of raw profiles,
    ``(x - mean) @ W``, the way to apply it to a new target without control wells.

    Attributes
    ----------
    features : list of str
        Feature columns, in order.
    ctl_mean, ctl_sd : numpy.ndarray
        Pooled raw control mean and within-plate control standard deviation.
    zca_mean, zca_w : numpy.ndarray
        ZCA centre and matrix on standardised profiles.
    lam : float
        ZCA regulariser.
    control : str
        Control condition.
    by : str
        Batch column (plate).
    n_controls : int
        Control wells fitted on.
    convention : str
        ZCA convention (:data:`SPHERING_CONVENTIONS`).
    """

    features: list[str]
    ctl_mean: np.ndarray
    ctl_sd: np.ndarray
    zca_mean: np.ndarray
    zca_w: np.ndarray
    lam: float
    control: str = CONTROL
    by: str = "Metadata_Plate"
    n_controls: int = 0
    convention: str = "pycytominer"

    @property
    def mean(self) -> np.ndarray:
        """Centre of the raw-space affine map (pooled controls)."""
        return self.ctl_mean + self.zca_mean * self.ctl_sd

    @property
    def W(self) -> np.ndarray:  # noqa: N802 (the conventional name of the matrix)
        """Matrix of the raw-space affine map: ``(x - mean) @ W``."""
        return self.zca_w / self.ctl_sd[:, None]

    def _matrix(self, df: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.features if f not in df.columns]
        if missing:
            raise InputError(
                f"profiles lack {len(missing)} feature columns of the sphering transform "
                f"(e.g. {missing[:3]}); embed with the same encoder / feature set."
            )
        return df[self.features].to_numpy(np.float64)

    def standardize(self, df: pd.DataFrame) -> pd.DataFrame:
        """Step 1 only: centre on the plate's controls and scale by the control SD.

        Parameters
        ----------
        df : pandas.DataFrame
            Raw well (or condition) profiles; ``by`` and ``Metadata_Condition`` are used
            when present.

        Returns
        -------
        pandas.DataFrame
            ``Metadata_`` columns and the standardised features (NaN -> 0).
        """
        x = self._matrix(df)
        centre = np.tile(self.ctl_mean, (len(df), 1))
        if self.by in df.columns and "Metadata_Condition" in df.columns:
            is_ctl = (df["Metadata_Condition"] == self.control).to_numpy()
            batch = df[self.by].to_numpy()
            for b in np.unique(batch):
                rows = batch == b
                if (rows & is_ctl).any():
                    centre[rows] = np.nanmean(x[rows & is_ctl], axis=0)
        z = np.nan_to_num((x - centre) / self.ctl_sd)
        return pd.concat(
            [get_metadata(df).reset_index(drop=True), pd.DataFrame(z, columns=self.features)],
            axis=1,
        )

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """Apply the whole correction (standardise, then ZCA) to profiles.

        Parameters
        ----------
        df : pandas.DataFrame
            Raw profiles with the fitted feature columns.

        Returns
        -------
        pandas.DataFrame
            ``Metadata_`` columns and the sphered features.
        """
        std = self.standardize(df)
        z = (std[self.features].to_numpy() - self.zca_mean) @ self.zca_w
        return pd.concat(
            [get_metadata(std), pd.DataFrame(z, columns=self.features, index=std.index)], axis=1
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the transform to an ``.npz`` file (atomically); see :func:`load_sphering`.

        Parameters
        ----------
        path : path-like
            Destination ending in ``.npz``.

        Returns
        -------
        pathlib.Path
            The written path.
        """
        arrays = {k: getattr(self, k) for k in ("ctl_mean", "ctl_sd", "zca_mean", "zca_w")}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh, features=np.array(self.features), mean=self.mean, W=self.W,
                    lam=self.lam, control=self.control, by=self.by,
                    n_controls=self.n_controls, convention=self.convention, **arrays,
                )  # fmt: skip
        return Path(path)


def fit_sphering(
    wells: pd.DataFrame,
    lam: float = 1e-2,
    control: str = CONTROL,
    by: str = "Metadata_Plate",
    convention: str = "pycytominer",
) -> Sphering:
    """Fit the batch correction (:class:`Sphering`) on the control wells of a screen.

    Parameters
    ----------
    wells : pandas.DataFrame
        Raw well profiles (:func:`well_profiles`) with ``Metadata_Condition`` and ``by``.
    lam : float
        ZCA regulariser, added to the singular values (``"pycytominer"``, its
        ``epsilon``) or to the covariance eigenvalues (``"deepprofiler"``; the thesis uses
        1e-2 .. 1e-5).
    control : str
        Control condition whose wells define the transform.
    by : str
        Batch column; each batch is centred on its own controls.
    convention : {"pycytominer", "deepprofiler"}
        ZCA convention (:func:`i2r_utils.whitening.zca_whitening`).

    Returns
    -------
    Sphering
        The fitted transform.
    """
    if convention not in SPHERING_CONVENTIONS:
        raise InputError(
            f"sphering convention {convention!r} unknown; choose one of {SPHERING_CONVENTIONS}"
        )
    feats = feature_columns(wells)
    ctl = wells[wells["Metadata_Condition"] == control]
    if len(ctl) < 2:
        raise InputError(
            f"{len(ctl)} control ({control!r}) wells: sphering needs at least two; check "
            "that the screen has control wells named like the `control` parameter."
        )
    x = ctl[feats].to_numpy(np.float64)
    ctl_mean = np.nan_to_num(np.nanmean(x, axis=0))
    resid = x - ctl.groupby(by)[feats].transform("mean").to_numpy(np.float64)
    sd = np.sqrt(np.nanmean(resid**2, axis=0))
    if len(ctl[by].unique()) == len(ctl):  # one control per batch: no within-batch spread
        sd = np.nanstd(x, axis=0)
    sd = np.where(np.isfinite(sd) & (sd > 1e-12 * (1 + np.abs(ctl_mean))), sd, 1.0)
    sph = Sphering(feats, ctl_mean, sd, np.zeros(len(feats)), np.eye(len(feats)), lam,
                   control, by, len(ctl), convention)  # fmt: skip
    z = sph.standardize(ctl)[feats].to_numpy()
    sph.zca_mean, sph.zca_w = zca_whitening(z, lam, convention)
    return sph


def load_sphering(path: str | os.PathLike) -> Sphering:
    """Load a transform written by :meth:`Sphering.save`.

    Parameters
    ----------
    path : path-like
        ``.npz`` file, e.g. ``work_dir/profiles/sphering_fold0.npz``.

    Returns
    -------
    Sphering
        The transform; ``transform(df)`` applies it to raw profiles, ``(x - mean) @ W``
        to a raw profile matrix.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"{path}: sphering transform not found; build the profiles of this run first."
        )
    with np.load(path, allow_pickle=False) as z:
        return Sphering(
            features=z["features"].astype(str).tolist(),
            ctl_mean=z["ctl_mean"], ctl_sd=z["ctl_sd"], zca_mean=z["zca_mean"],
            zca_w=z["zca_w"], lam=float(z["lam"]), control=str(z["control"]),
            by=str(z["by"]), n_controls=int(z["n_controls"]),
            convention=str(z["convention"]) if "convention" in z else "pycytominer",
        )  # fmt: skip


# --------------------------------------------------------------------------------------------
# strong perturbations (thesis Algorithm 1)
# --------------------------------------------------------------------------------------------


def strong_perturbations(
    wells: pd.DataFrame, control: str = CONTROL, by: str = "Metadata_Plate"
) -> pd.DataFrame:
    """Rank conditions by the strength of their phenotype (thesis Algorithm 1).

    Per plate: the median control well profile; the Euclidean distance of every well to
    it, z-scored with the mean and standard deviation of the control wells' distances;
    a condition's plate score is the mean z of its wells on that plate; its score is the
    sum of its plate scores.

    Parameters
    ----------
    wells : pandas.DataFrame
        Well profiles (normalised or sphered), with ``by`` and ``Metadata_Condition``.
    control : str
        Control condition.
    by : str
        Plate column.

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Condition``, ``score``, ``n_plates``, ``rank`` (1 = strongest), sorted
        by rank; the control is not ranked.
    """
    feats = feature_columns(wells)
    parts = []
    for plate, w in wells.groupby(by, sort=True):
        x = w[feats].to_numpy(np.float64)
        is_ctl = (w["Metadata_Condition"] == control).to_numpy()
        if is_ctl.sum() < 2:
            raise InputError(f"plate {plate!r} has fewer than two control wells to z-score with")
        dist = np.linalg.norm(x - np.median(x[is_ctl], axis=0), axis=1)
        sd = dist[is_ctl].std(ddof=1)
        z = (dist - dist[is_ctl].mean()) / (sd if sd > 0 else 1.0)
        parts.append(
            pd.DataFrame({"Metadata_Condition": w["Metadata_Condition"].to_numpy(), "z": z})[
                ~is_ctl
            ]
            .groupby("Metadata_Condition")["z"]
            .mean()
        )
    per_plate = pd.concat(parts, axis=1)
    out = pd.DataFrame(
        {"score": per_plate.sum(axis=1, min_count=1), "n_plates": per_plate.notna().sum(axis=1)}
    )
    out["rank"] = out["score"].rank(ascending=False, method="first").astype(int)
    out.index.name = "Metadata_Condition"
    return out.reset_index().sort_values("rank", ignore_index=True)


# --------------------------------------------------------------------------------------------
# the whole chain for one representation
# --------------------------------------------------------------------------------------------


@dataclass
class ProfileSet:
    """Profiles of one representation (one feature space), before and after sphering.

    Attributes
    ----------
    sphering : Sphering
        The transform fitted on the control wells.
    wells : pandas.DataFrame
        Raw well profiles (:func:`well_profiles`).
    wells_before, wells_after : pandas.DataFrame
        Well profiles standardised to the plate's controls / sphered.
    conditions_before, conditions_after : pandas.DataFrame
        Condition profiles (mean of the wells) of each.
    """

    sphering: Sphering
    wells: pd.DataFrame
    wells_before: pd.DataFrame
    wells_after: pd.DataFrame
    conditions_before: pd.DataFrame
    conditions_after: pd.DataFrame


def build_profiles(
    nuclei: pd.DataFrame, lam: float = 1e-2, control: str = CONTROL, convention: str = "pycytominer"
) -> ProfileSet:
    """Nucleus -> image (median) -> well (mean) -> condition (mean), before and after sphering.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        One row per nucleus (``IMAGE_KEYS`` metadata and features, e.g. CNN embeddings or
        hand-crafted features).
    lam : float
        Sphering regulariser (:func:`fit_sphering`).
    control : str
        Control condition.
    convention : {"pycytominer", "deepprofiler"}
        ZCA convention (:func:`fit_sphering`).

    Returns
    -------
    ProfileSet
        Transform and profiles.
    """
    wells = well_profiles(nuclei)
    sph = fit_sphering(wells, lam, control, convention=convention)
    before, after = sph.standardize(wells), sph.transform(wells)
    return ProfileSet(sph, wells, before, after, condition_means(before), condition_means(after))


# --------------------------------------------------------------------------------------------
# the profiles the translation uses
# --------------------------------------------------------------------------------------------

REPRESENTATIONS = ("cnn", "features", "both")
#: Condition embeddings of the encoder: i2r's sphered profiles, the original's nucleus mean.
CONDITION_EMBEDDINGS = ("profiles", "nucleus_mean")


def nucleus_means(nuclei: pd.DataFrame, control: str = CONTROL) -> pd.DataFrame:
    """Embed conditions as the original Image2Reg: the plain mean of a condition's nuclei.

    No image or well level, no plate or control normalisation, no sphering; the control is
    left out.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        One row per nucleus (``Metadata_Condition`` and features, e.g. one fold encoder's
        embeddings).
    control : str
        Control condition (excluded).

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Condition``, ``Metadata_Nuclei`` and the mean features (float64), one row
        per condition (sorted).
    """
    feats = feature_columns(nuclei)
    keep = nuclei.loc[nuclei["Metadata_Condition"] != control, ["Metadata_Condition", *feats]]
    out = aggregate(keep.astype({f: np.float64 for f in feats}), ["Metadata_Condition"])
    return out.rename(columns={"Metadata_Count": "Metadata_Nuclei"})[
        ["Metadata_Condition", "Metadata_Nuclei", *feats]
    ]


def combine_blocks(blocks: dict[str, pd.DataFrame], on: str = "Metadata_Condition") -> pd.DataFrame:
    """Join feature blocks row by row, each divided by the square root of its dimension.

    After sphering every feature has unit variance over the control wells, so a block of
    ``d`` features has squared norm about ``d``; dividing by ``sqrt(d)`` gives every block
    the same weight in distances and kernels. The scaling depends on the dimensions only,
    so a new target's profile is combined exactly as the screen's.

    Parameters
    ----------
    blocks : dict of str to pandas.DataFrame
        Block name -> table with the ``on`` column and features (other ``Metadata_``
        columns are taken from the first block).
    on : str
        Column that matches rows across blocks (inner join, order of the first block).

    Returns
    -------
    pandas.DataFrame
        Metadata of the first block, then every block's features prefixed ``<name>__``.
    """
    if not blocks:
        raise ValueError("no blocks to combine")
    out = None
    for name, df in blocks.items():
        if on not in df:
            raise InputError(f"block {name!r} has no {on} column")
        feats = feature_columns(df)
        if not feats:
            raise InputError(f"block {name!r} has no feature columns")
        scaled = df[feats].astype(float) / np.sqrt(len(feats))
        scaled.columns = [f"{name}__{c}" for c in feats]
        part = pd.concat([df[[on]], scaled], axis=1)
        if out is None:
            out = pd.concat([get_metadata(df), scaled], axis=1)
        else:
            out = out.merge(part, on=on, how="inner", validate="one_to_one")
    return out.reset_index(drop=True)


def combine_representation(
    cnn: pd.DataFrame | None, features: pd.DataFrame | None, representation: str
) -> pd.DataFrame:
    """Profiles of one fold space (or one new target) in a translation representation.

    Parameters
    ----------
    cnn, features : pandas.DataFrame or None
        Sphered encoder and hand-crafted feature profiles of the same conditions (the one
        the representation does not use may be None).
    representation : {"cnn", "features", "both"}
        ``"both"``: :func:`combine_blocks` with blocks ``cnn`` and ``features``.

    Returns
    -------
    pandas.DataFrame
        The profiles.
    """
    if representation == "cnn":
        return cnn
    if representation == "features":
        return features
    return combine_blocks({"cnn": cnn, "features": features})


def translation_profiles(
    profiles_dir: str | os.PathLike, representation: str = "cnn"
) -> pd.DataFrame:
    """Condition profiles for the translation, one row per fold space and condition.

    Parameters
    ----------
    profiles_dir : path-like
        ``work_dir/profiles`` with ``cnn_condition_profiles.parquet`` (one space per fold,
        ``Metadata_Fold``) and, for ``"features"`` and ``"both"``,
        ``features_condition_profiles.parquet``.
    representation : {"cnn", "features", "both"}
        ``"cnn"``: the trained encoder's sphered profiles (a condition's row in fold space
        ``k`` comes from the encoder of fold ``k``); ``"features"``: the sphered
        hand-crafted features, repeated in every fold space (no encoder, so no leakage);
        ``"both"``: per fold space, the two side by side (:func:`combine_blocks`, blocks
        ``cnn`` and ``features``).

    Returns
    -------
    pandas.DataFrame
        ``Metadata_Fold``, ``Metadata_Condition`` (and other metadata) and features.
    """
    if representation not in REPRESENTATIONS:
        raise InputError(
            f"unknown representation {representation!r}; choose one of {list(REPRESENTATIONS)}"
        )
    pdir = Path(profiles_dir)
    need = ["cnn_condition_profiles.parquet"]
    if representation != "cnn":
        need.append("features_condition_profiles.parquet")
    missing = [n for n in need if not (pdir / n).is_file()]
    if missing:
        raise InputError(
            f"{pdir}: missing {missing}; build the condition profiles of this run first."
        )
    cnn = read_table(pdir / "cnn_condition_profiles.parquet")
    if representation == "cnn":
        return cnn
    feats = read_table(pdir / "features_condition_profiles.parquet")
    out = []
    for k in sorted(int(f) for f in cnn["Metadata_Fold"].unique()):
        space = cnn[cnn["Metadata_Fold"] == k] if representation == "both" else None
        fold_feats = feats.assign(Metadata_Fold=k)[["Metadata_Fold", *feats.columns]]
        out.append(combine_representation(space, fold_feats, representation))
    return pd.concat(out, ignore_index=True)
