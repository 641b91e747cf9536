"""The embedded default data: a synthetic over-expression screen with known truth.

A biologist's stand-in for the Rohban et al. ORF screen, deterministic from a seed:

* a gene-gene interaction network with community structure and scale-free degrees
  (Barabasi-Albert graphs inside communities, sparse links between them), and
  expression-like node features (log-expression over samples, smooth on the network);
* every over-expressed gene shifts seven nuclear phenotypes (size, elongation, DNA
  intensity, heterochromatin foci count, foci size, foci peripheral bias, chromatin
  texture) through a smooth function of its position in the network (a heat-kernel
  diffusion of random signals), so network neighbours look alike; some conditions have
  no phenotype at all; every nucleus varies around its condition's mean;
* rendered 16-bit fields of view with touching nuclei, a blur, shot and read noise,
  vignetting and per-plate gain/offset batch effects, plus instance label masks;
* organised as ``images/<plate>/<well>_s<site>.tif`` and ``masks/<plate>/...`` (same file
  name) with ``metadata.csv`` (``Metadata_`` columns); control wells
  (:data:`i2r_utils.columns.CONTROL`) on every plate; the network in ``network/`` and
  the truth in ``truth/``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage

from .columns import CONTROL
from .io import temp_folder, write_json, write_table
from .progress import tqdm

__all__ = [
    "ScreenParams",
    "SIZES",
    "IMPACTFUL_GENES",
    "NULL_GENES",
    "PHENOTYPES",
    "screen_params",
    "simulate_network",
    "simulate_phenotype_shifts",
    "render_field",
    "simulate_screen",
]

# Image2Reg's 41 impactful genes, default held-out conditions first.
IMPACTFUL_GENES = [
    "BRAF", "JUN", "RAF1", "SMAD4", "SREBF1", "AKT1S1", "ATF4", "BAX", "BCL2L11", "CASP8",
    "CDC42", "CDKN1A", "CEBPA", "CREB1", "CXXC4", "DIABLO", "E2F1", "ELK1", "ERG", "FGFR3",
    "FOXO1", "GLI1", "HRAS", "IRAK4", "MAP2K3", "MAP3K2", "MAP3K5", "MAP3K9", "MAPK7", "MOS",
    "MYD88", "PIK3R2", "PRKACA", "PRKCE", "RELB", "RHOA", "SMO", "SRC", "TRAF2", "TSC2",
    "WWTR1",
]  # fmt: skip
# Over-expressed genes simulated with no phenotype (as most of the ORF screen).
NULL_GENES = ["KRAS", "TP53", "MYC", "STAT3", "NFKB1", "CTNNB1", "HIF1A", "PTEN", "RB1"]
PHENOTYPES = [
    "size", "elongation", "intensity", "foci_count", "foci_size", "foci_periphery", "texture",
]  # fmt: skip


@dataclass(frozen=True)
class ScreenParams:
    """Sizes and effect strengths of a synthetic screen.

    Attributes
    ----------
    n_genes : int
        Genes in the interaction network (candidates for the translation).
    n_communities : int
        Network communities (pathway-like modules).
    n_impactful : int
        Over-expressed genes with a phenotype (taken from ``IMPACTFUL_GENES`` in order).
    n_null : int
        Over-expressed genes without a phenotype (from ``NULL_GENES``).
    n_plates, wells_per_condition, control_wells, sites_per_well : int
        Layout: every condition has ``wells_per_condition`` wells on every plate and every
        plate has ``control_wells`` control wells; ``sites_per_well`` images per well.
    image_size : int
        Side of the square field of view in pixels.
    nuclei_per_image : float
        Mean number of nuclei per field.
    n_samples : int
        Expression samples (columns of the node-feature table).
    effect : float
        Scale of condition shifts in units of the cell-to-cell standard deviation.
    heat_t : float
        Diffusion time of the heat kernel that makes phenotypes smooth on the network.
    """

    n_genes: int = 300
    n_communities: int = 8
    n_impactful: int = 41
    n_null: int = 9
    n_plates: int = 2
    wells_per_condition: int = 2
    control_wells: int = 8
    sites_per_well: int = 2
    image_size: int = 256
    nuclei_per_image: float = 20.0
    n_samples: int = 40
    effect: float = 1.6
    heat_t: float = 5.0


SIZES = {
    "tiny": ScreenParams(
        n_genes=60, n_communities=3, n_impactful=8, n_null=2, n_plates=2,
        wells_per_condition=1, control_wells=2, sites_per_well=2, image_size=160,
        nuclei_per_image=10.0, n_samples=12,
    ),
    "default": ScreenParams(),
}  # fmt: skip


def screen_params(size: str = "default", **overrides) -> ScreenParams:
    """Return the parameters of a named size with optional overrides.

    Parameters
    ----------
    size : {"tiny", "default"}
        Preset: ``tiny`` for tests (seconds), ``default`` for the main job (minutes).
    **overrides
        Any :class:`ScreenParams` field.

    Returns
    -------
    ScreenParams
        The parameters.
    """
    if size not in SIZES:
        raise ValueError(f"unknown screen size {size!r}; choose one of {sorted(SIZES)}")
    fields = set(ScreenParams.__dataclass_fields__)
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown screen parameters {sorted(unknown)}; known: {sorted(fields)}")
    return replace(SIZES[size], **overrides)


def _conditions(p: ScreenParams) -> tuple[list[str], list[str]]:
    if p.n_impactful > len(IMPACTFUL_GENES) or p.n_null > len(NULL_GENES):
        raise ValueError(
            f"at most {len(IMPACTFUL_GENES)} impactful and {len(NULL_GENES)} null conditions"
        )
    return IMPACTFUL_GENES[: p.n_impactful], NULL_GENES[: p.n_null]


def _heat_kernel(graph: nx.Graph, genes: list[str], t: float) -> np.ndarray:
    adj = nx.to_numpy_array(graph, nodelist=genes)
    deg = adj.sum(1)
    dinv = 1.0 / np.sqrt(np.maximum(deg, 1e-12))
    lap = np.eye(len(genes)) - dinv[:, None] * adj * dinv[None, :]
    w, v = np.linalg.eigh(lap)
    return (v * np.exp(-t * w)) @ v.T


def simulate_network(p: ScreenParams, seed: int = 0):
    """Simulate the gene network, its communities and expression node features.

    Parameters
    ----------
    p : ScreenParams
        Screen parameters.
    seed : int
        Random seed.

    Returns
    -------
    graph : networkx.Graph
        Undirected weighted network over gene symbols.
    genes : pandas.DataFrame
        ``gene``, ``community``, ``is_target`` per node.
    expression : pandas.DataFrame
        Genes x samples log-expression table (index: gene).
    heat : numpy.ndarray
        Heat kernel of the normalised Laplacian (genes x genes), in ``genes`` order.
    """
    rng = np.random.default_rng([seed, 1])
    impactful, null = _conditions(p)
    targets = impactful + null
    if p.n_genes < len(targets) + 2 * p.n_communities:
        raise ValueError(f"n_genes={p.n_genes} is too small for {len(targets)} targets")
    n_fill = p.n_genes - len(targets)
    names = targets + [f"G{i:04d}" for i in range(1, n_fill + 1)]
    # communities: targets round-robin (in shuffled order), then fillers, balanced sizes
    comm = np.empty(p.n_genes, dtype=int)
    comm[: len(targets)] = rng.permutation(np.arange(len(targets)) % p.n_communities)
    comm[len(targets) :] = rng.permutation(np.arange(n_fill) % p.n_communities)
    graph = nx.Graph()
    graph.add_nodes_from(names)
    members = [np.flatnonzero(comm == c) for c in range(p.n_communities)]
    for idx in members:
        sub = nx.barabasi_albert_graph(len(idx), 2, seed=int(rng.integers(2**31)))
        order = rng.permutation(idx)
        graph.add_edges_from((names[order[a]], names[order[b]]) for a, b in sub.edges)
    # sparse links: a chain of communities plus a few long-range edges
    n_long = max(1, p.n_genes // 50)
    pairs = [(c, c + 1) for c in range(p.n_communities - 1)]
    pairs += [tuple(rng.choice(p.n_communities, 2, replace=False)) for _ in range(n_long)]
    for a, b in pairs:
        for _ in range(2):
            graph.add_edge(names[rng.choice(members[a])], names[rng.choice(members[b])])
    for u, v in graph.edges:
        graph.edges[u, v]["weight"] = float(np.round(rng.uniform(0.4, 1.0), 3))
    heat = _heat_kernel(graph, names, p.heat_t)
    signal = heat @ rng.standard_normal((p.n_genes, p.n_samples))
    signal /= signal.std(0, keepdims=True)
    base = rng.normal(5.0, 1.0, size=(p.n_genes, 1))
    expr = base + 1.2 * signal + rng.normal(0, 0.4, size=signal.shape)
    expression = pd.DataFrame(
        np.round(np.maximum(expr, 0), 4),
        index=pd.Index(names, name="gene"),
        columns=[f"S{i:02d}" for i in range(1, p.n_samples + 1)],
    )
    genes = pd.DataFrame(
        {"gene": names, "community": comm, "is_target": [n in targets for n in names]}
    )
    return graph, genes, expression, heat


def simulate_phenotype_shifts(p: ScreenParams, heat: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return the phenotype shift of over-expressing each gene (genes x phenotypes).

    The shift is ``effect * tanh(S @ W)`` with ``S`` a heat-kernel diffusion of random
    signals on the network (so neighbouring genes shift alike) and ``W`` a random mixing.

    Parameters
    ----------
    p : ScreenParams
        Screen parameters.
    heat : numpy.ndarray
        Heat kernel (genes x genes).
    seed : int
        Random seed.

    Returns
    -------
    numpy.ndarray
        Shifts in units of the cell-to-cell standard deviation.
    """
    rng = np.random.default_rng([seed, 2])
    latent = heat @ rng.standard_normal((heat.shape[0], 4))
    latent = (latent - latent.mean(0)) / latent.std(0)
    mix = rng.standard_normal((4, len(PHENOTYPES))) / np.sqrt(2.0)
    return p.effect * np.tanh(latent @ mix)


def _render_nucleus(z: np.ndarray, rng: np.random.Generator):
    """Return (intensity patch, mask patch) of one nucleus with phenotype vector ``z``."""
    size, elong, inten, nfoci, fsize, fper, tex = z
    r = 15.0 * np.exp(0.10 * size)
    aspect = np.exp(0.10 + 0.12 * abs(elong))
    a, b = r * np.sqrt(aspect), r / np.sqrt(aspect)
    half = int(np.ceil(a * 1.15)) + 3
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float32)
    th = rng.uniform(0, np.pi)
    xr = xx * np.cos(th) + yy * np.sin(th)
    yr = -xx * np.sin(th) + yy * np.cos(th)
    ang = np.arctan2(yr, xr)
    wobble = (
        1.0
        + 0.04 * np.sin(3 * ang + rng.uniform(0, 6.3))
        + 0.03 * np.sin(5 * ang + rng.uniform(0, 6.3))
    )
    q = ((xr / a) ** 2 + (yr / b) ** 2) / wobble**2
    mask = q <= 1.0
    level = 7000.0 * np.exp(0.12 * inten)
    field = ndimage.gaussian_filter(rng.standard_normal(mask.shape), 1.5)
    field *= (0.10 * np.exp(0.30 * tex)) / (field.std() + 1e-9)
    body = level * (1.0 - 0.25 * q) * (1.0 + field)
    n_foci = rng.poisson(5.0 * np.exp(0.35 * nfoci))
    if n_foci:
        sigma = 1.3 * np.exp(0.15 * fsize)
        rho = rng.uniform(0, 1, n_foci) ** np.exp(-0.6 * fper) * 0.85
        phi = rng.uniform(0, 2 * np.pi, n_foci)
        fx, fy = rho * a * np.cos(phi), rho * b * np.sin(phi)
        cx = fx * np.cos(th) - fy * np.sin(th)
        cy = fx * np.sin(th) + fy * np.cos(th)
        amp = 0.7 * level * rng.uniform(0.6, 1.2, n_foci)
        for x0, y0, ai in zip(cx, cy, amp, strict=True):
            body += ai * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    return np.where(mask, body, 0.0).astype(np.float32), mask


def render_field(
    z: np.ndarray, image_size: int, rng: np.random.Generator, batch: dict | None = None
):
    """Render one 16-bit field of view and its label mask.

    Parameters
    ----------
    z : numpy.ndarray
        Phenotype vectors of the nuclei to place (n x 7); some may not fit and are dropped.
    image_size : int
        Side of the square field.
    rng : numpy.random.Generator
        Random generator (positions, texture, noise).
    batch : dict, optional
        Plate effects: ``gain``, ``offset``, ``vignette``.

    Returns
    -------
    image : numpy.ndarray
        uint16 image.
    labels : numpy.ndarray
        uint16 instance labels (0 = background).
    """
    batch = batch or {"gain": 1.0, "offset": 200.0, "vignette": 0.2}
    canvas = np.zeros((image_size, image_size), np.float32)
    labels = np.zeros((image_size, image_size), np.uint16)
    centres, radii = [], []
    for zi in z:
        patch, mask = _render_nucleus(zi, rng)
        half = patch.shape[0] // 2
        rad = 0.8 * half
        for _ in range(30):  # rejection sampling: touching allowed, heavy overlap not
            c = rng.uniform(0, image_size, 2)
            if all(
                np.hypot(*(c - c2)) > 0.85 * (rad + r2)
                for c2, r2 in zip(centres, radii, strict=True)
            ):
                break
        else:
            continue
        centres.append(c)
        radii.append(rad)
        y0, x0 = int(c[0]) - half, int(c[1]) - half
        ys, xs = (
            slice(max(y0, 0), min(y0 + patch.shape[0], image_size)),
            slice(max(x0, 0), min(x0 + patch.shape[1], image_size)),
        )
        sub = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
        free = mask[sub] & (labels[ys, xs] == 0)
        labels[ys, xs][free] = len(centres)
        canvas[ys, xs] = np.where(free, patch[sub], canvas[ys, xs])
    canvas = ndimage.gaussian_filter(canvas, 1.0)
    yy, xx = np.mgrid[0:image_size, 0:image_size] / (image_size / 2) - 1
    illum = 1.0 - batch["vignette"] * (xx**2 + yy**2) / 2
    signal = batch["gain"] * illum * canvas
    photons = rng.poisson(np.maximum(signal, 0) / 4.0) * 4.0  # shot noise, 4 ADU/photon
    image = photons + batch["offset"] + rng.normal(0, 25, signal.shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def _plate_wells(n: int) -> list[str]:
    rows = "ABCDEFGHIJKLMNOP"
    wells = [f"{r}{c:02d}" for r in rows for c in range(1, 25)]
    if n > len(wells):
        raise ValueError(f"{n} wells do not fit a 384-well plate; lower wells_per_condition")
    return wells[:n]


def _params_hash(p: ScreenParams, seed: int) -> str:
    blob = json.dumps({"params": asdict(p), "seed": seed, "version": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def simulate_screen(
    out_dir: str | Path,
    size: str = "default",
    seed: int = 0,
    progress: bool = True,
    **overrides,
) -> Path:
    """Generate (or reuse) a synthetic screen in ``out_dir``.

    The screen is written to a temporary sibling folder and renamed into place when
    complete, so an interrupted run never leaves a half-written screen. A complete screen
    with the same parameters and seed is reused; a different one is an error (choose
    another folder).

    Parameters
    ----------
    out_dir : path-like
        Destination folder.
    size : {"tiny", "default"}
        Size preset, see :func:`screen_params`.
    seed : int
        Random seed; the same seed gives byte-identical images.
    progress : bool
        Show a progress bar.
    **overrides
        :class:`ScreenParams` fields to override.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    p = screen_params(size, **overrides)
    key = _params_hash(p, seed)
    done = out_dir / "screen.json"
    if done.is_file():
        info = json.loads(done.read_text())
        if info.get("hash") == key:
            return out_dir
        raise FileExistsError(
            f"{out_dir} holds a synthetic screen made with other parameters "
            f"({info.get('size')}, seed {info.get('seed')}); delete it or choose another folder."
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} exists and is not a synthetic screen; choose another.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_folder(out_dir.parent, f".{out_dir.name}.tmp-")
    try:
        _write_screen(tmp, p, seed, progress)
        write_json(
            {"hash": key, "size": size, "seed": seed, "params": asdict(p)}, tmp / "screen.json"
        )
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _write_screen(root: Path, p: ScreenParams, seed: int, progress: bool) -> None:
    graph, genes, expression, heat = simulate_network(p, seed)
    shifts = simulate_phenotype_shifts(p, heat, seed)
    impactful, null = _conditions(p)
    gene_idx = {g: i for i, g in enumerate(genes["gene"])}
    cond_shift = {CONTROL: np.zeros(len(PHENOTYPES))}
    for g in impactful:
        cond_shift[g] = shifts[gene_idx[g]]
    for g in null:
        cond_shift[g] = np.zeros(len(PHENOTYPES))
    (root / "network").mkdir(parents=True)
    edges = pd.DataFrame(
        [(u, v, d["weight"]) for u, v, d in graph.edges(data=True)],
        columns=["gene1", "gene2", "weight"],
    )
    write_table(edges, root / "network" / "edges.tsv")
    expression.reset_index().to_csv(root / "network" / "expression.csv", index=False)
    truth = pd.DataFrame(
        {
            "Metadata_Condition": list(cond_shift),
            "Metadata_Gene": [None if c == CONTROL else c for c in cond_shift],
            "has_phenotype": [c in impactful for c in cond_shift],
        }
    )
    for j, name in enumerate(PHENOTYPES):
        truth[f"shift_{name}"] = [np.round(cond_shift[c][j], 4) for c in cond_shift]
    truth = truth.merge(
        genes[["gene", "community"]].rename(columns={"gene": "Metadata_Gene"}),
        on="Metadata_Gene",
        how="left",
    )
    write_table(truth, root / "truth" / "conditions.csv")
    write_table(genes, root / "truth" / "genes.csv")
    _write_fields(root, p, seed, impactful + null, cond_shift, progress)


def _write_fields(root: Path, p: ScreenParams, seed: int, conditions, cond_shift, progress):
    """Lay the conditions out in shuffled wells, render every field; write ``metadata.csv``."""
    rows = []
    layout_rng = np.random.default_rng([seed, 3])
    for plate_i in range(p.n_plates):
        plate = f"P{plate_i + 1:02d}"
        content = [CONTROL] * p.control_wells + [
            c for c in conditions for _ in range(p.wells_per_condition)
        ]
        wells = _plate_wells(len(content))
        content = [content[i] for i in layout_rng.permutation(len(content))]
        batch = {
            "gain": float(layout_rng.normal(1.0, 0.08)),
            "offset": float(layout_rng.normal(200, 30)),
            "vignette": float(layout_rng.uniform(0.15, 0.3)),
        }
        for well, cond in zip(wells, content, strict=True):
            for site in range(1, p.sites_per_well + 1):
                rows.append((plate, well, site, cond, batch))
    seqs = np.random.SeedSequence([seed, 4]).spawn(len(rows))
    meta = []
    for (plate, well, site, cond, batch), ss in zip(
        tqdm(rows, desc="render fields", disable=not progress), seqs, strict=True
    ):
        rng = np.random.default_rng(ss)
        n = max(1, rng.poisson(p.nuclei_per_image))
        z = cond_shift[cond] + rng.standard_normal((n, len(PHENOTYPES)))
        image, labels = render_field(z, p.image_size, rng, batch)
        name = f"{well}_s{site}.tif"
        img_rel, msk_rel = f"images/{plate}/{name}", f"masks/{plate}/{name}"
        for rel, arr in ((img_rel, image), (msk_rel, labels)):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / rel, arr, compression="zlib")
        meta.append((plate, well, site, cond, img_rel, msk_rel))
    write_table(
        pd.DataFrame(
            meta,
            columns=[
                "Metadata_Plate",
                "Metadata_Well",
                "Metadata_Site",
                "Metadata_Condition",
                "Metadata_ImagePath",
                "Metadata_MaskPath",
            ],
        ),
        root / "metadata.csv",
    )
