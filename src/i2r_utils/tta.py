"""Test-time augmentation (TTA) over the dihedral group D4, and instance voting.

A segmentation method is applied to transformed copies of an image (flips, rotations by
90 degrees, transposes: the 8 elements of :data:`D4_TRANSFORMS`); each output is transformed
back (:func:`invert_transform`) so that all versions describe the original image.

* Probability maps (U-Net) are simply averaged after de-augmentation.
* Label images (classical segmentation) cannot be averaged: :func:`merge_instances_tta`
  matches the objects of the versions by IoU and keeps, by majority vote, the objects and the
  pixels present in most versions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.segmentation import relabel_sequential

__all__ = [
    "D4_TRANSFORMS",
    "THESIS6",
    "apply_transform",
    "invert_transform",
    "merge_instances_tta",
    "resolve_tta",
]

#: Names of the 8 transforms of the dihedral group D4, acting on the last two axes.
D4_TRANSFORMS = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "fliplr",
    "flipud",
    "transpose",
    "antitranspose",
)

#: The 6 versions of the thesis (Moshkov): the original, horizontal and vertical flips and the
#: rotations by 90, 180 and 270 degrees (D4 without the two transposes).
THESIS6 = ("identity", "fliplr", "flipud", "rot90", "rot180", "rot270")


def resolve_tta(tta: str | Sequence[str] | None) -> list[str]:
    """Turn a TTA specification into a list of D4 transform names.

    Parameters
    ----------
    tta : str, sequence of str or None
        ``None``, ``"none"`` or an empty sequence: no augmentation; ``"d4"``: the 8 transforms of
        :data:`D4_TRANSFORMS`; ``"thesis6"``: the thesis' 6 versions (:data:`THESIS6`);
        ``"flips"``: identity, fliplr, flipud, rot180; one transform name or a sequence of
        names.

    Returns
    -------
    list of str
        Transform names without duplicates, in the given order (empty for no TTA).
    """
    if tta is None:
        return []
    if isinstance(tta, str):
        key = tta.lower()
        if key == "none":
            return []
        if key == "d4":
            return list(D4_TRANSFORMS)
        if key == "thesis6":
            return list(THESIS6)
        if key == "flips":
            return ["identity", "fliplr", "flipud", "rot180"]
        tta = [key]
    names = list(dict.fromkeys(tta))
    unknown = [n for n in names if n not in D4_TRANSFORMS]
    if unknown:
        raise ValueError(
            f"unknown TTA transform(s) {unknown}; use None, 'd4', 'thesis6', 'flips' "
            f"or a list of names from {D4_TRANSFORMS}."
        )
    return names


def apply_transform(array: np.ndarray, name: str) -> np.ndarray:
    """Apply one D4 transform to the last two axes of an array.

    Parameters
    ----------
    array : numpy.ndarray
        Array with at least 2 dimensions (e.g. an image or a ``(C, H, W)`` map).
    name : str
        One of :data:`D4_TRANSFORMS`.

    Returns
    -------
    numpy.ndarray
        Transformed array (a contiguous copy).
    """
    a = np.asarray(array)
    if name == "identity":
        out = a
    elif name in ("rot90", "rot180", "rot270"):
        out = np.rot90(a, k=int(name[3:]) // 90, axes=(-2, -1))
    elif name == "fliplr":
        out = np.flip(a, axis=-1)
    elif name == "flipud":
        out = np.flip(a, axis=-2)
    elif name == "transpose":
        out = np.swapaxes(a, -2, -1)
    elif name == "antitranspose":
        out = np.swapaxes(np.flip(a, axis=(-2, -1)), -2, -1)
    else:
        raise ValueError(f"unknown transform {name!r}; use one of {D4_TRANSFORMS}.")
    return np.ascontiguousarray(out)


def invert_transform(array: np.ndarray, name: str) -> np.ndarray:
    """Undo :func:`apply_transform` with the same ``name`` (de-augmentation).

    Parameters
    ----------
    array : numpy.ndarray
        Transformed array (transform acted on the last two axes).
    name : str
        One of :data:`D4_TRANSFORMS`.

    Returns
    -------
    numpy.ndarray
        Array in the original orientation.
    """
    inverse = {"rot90": "rot270", "rot270": "rot90"}.get(name, name)  # others are involutions
    return apply_transform(array, inverse)


# --- instance voting -------------------------------------------------------------------


def _object_pixels(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Return the positive labels of a flat label array and the flat indices of each."""
    order = np.argsort(labels, kind="stable")
    ids, starts = np.unique(labels[order], return_index=True)
    groups = np.split(order, starts[1:])
    keep = ids > 0
    return ids[keep], [g for g, k in zip(groups, keep, strict=True) if k]


def _check_label_images(
    label_images: Sequence[np.ndarray], min_votes: int | None
) -> tuple[list[np.ndarray], int]:
    """Validate the versions of a scene; return them as arrays and the votes needed."""
    if isinstance(label_images, np.ndarray) and label_images.ndim == 2:
        label_images = [label_images]
    stack = [np.asarray(lab) for lab in label_images]
    if not stack:
        raise ValueError("label_images is empty; pass at least one label image.")
    shape = stack[0].shape
    for k, lab in enumerate(stack):
        if lab.shape != shape or not np.issubdtype(lab.dtype, np.integer):
            raise ValueError(
                f"label_images[{k}] has shape {lab.shape} and dtype {lab.dtype}; all must be "
                f"integer label images of shape {shape} (invert the TTA transforms first)."
            )
    n = len(stack)
    min_votes = n // 2 + 1 if min_votes is None else int(min_votes)
    if not 1 <= min_votes <= n:
        raise ValueError(f"min_votes must be in [1, {n}], got {min_votes}.")
    return stack, min_votes


def _match_to_groups(
    refs: list[np.ndarray], flat: np.ndarray, ids: np.ndarray, pixels: list[np.ndarray],
    iou_threshold: float,
) -> list[tuple[int, int]]:  # fmt: skip
    """One-to-one matches (group, object) of maximal total IoU, each with IoU >= threshold."""
    areas = np.array([p.size for p in pixels])
    iou = np.zeros((len(refs), ids.size))
    for g, ref in enumerate(refs):
        hit = flat[ref]
        hit = np.searchsorted(ids, hit[hit > 0])
        inter = np.bincount(hit, minlength=ids.size)
        iou[g] = inter / (ref.size + areas - inter)
    rows, cols = linear_sum_assignment(np.where(iou >= iou_threshold, iou, 0.0), maximize=True)
    return [(g, j) for g, j in zip(rows, cols, strict=True) if iou[g, j] >= iou_threshold]


def _group_objects(stack: list[np.ndarray], iou_threshold: float) -> list[list[np.ndarray]]:
    """Group the objects of all versions: flat pixel indices of each group's members.

    Every object of a version joins the group whose first object it matches
    (:func:`_match_to_groups`), or starts a new group.
    """
    refs: list[np.ndarray] = []  # flat pixel indices of each group's first object
    members: list[list[np.ndarray]] = []
    for lab in stack:
        flat = lab.ravel()
        ids, pixels = _object_pixels(flat)
        matched_obj: set[int] = set()
        if refs and ids.size:
            for g, j in _match_to_groups(refs, flat, ids, pixels, iou_threshold):
                members[g].append(pixels[j])
                matched_obj.add(int(j))
        for j, pix in enumerate(pixels):
            if j not in matched_obj:
                refs.append(pix)
                members.append([pix])
    return members


def _vote(members: list[list[np.ndarray]], shape: tuple[int, ...], min_votes: int) -> np.ndarray:
    """Label image of the groups with ``min_votes`` members, pixel-wise majority masks."""
    out = np.zeros(int(np.prod(shape)), dtype=np.int32)
    best = np.zeros(out.size, dtype=np.int32)
    label = 0
    for group in members:
        if len(group) < min_votes:
            continue
        pix, votes = np.unique(np.concatenate(group), return_counts=True)
        win = (votes >= min_votes) & (votes > best[pix])
        if win.any():
            label += 1
            out[pix[win]] = label
            best[pix[win]] = votes[win]
    return relabel_sequential(out.reshape(shape))[0].astype(np.int32)


def merge_instances_tta(
    label_images: Sequence[np.ndarray], iou_threshold: float = 0.5, min_votes: int | None = None
) -> np.ndarray:
    """Merge several label images of the same scene (e.g. de-augmented TTA outputs).

    Objects are grouped across versions greedily: the objects of the first version start
    one group each, and every object of a later version joins the group whose first
    object it overlaps with IoU >= ``iou_threshold`` (one-to-one per version, maximal
    total IoU), or starts a new group. A group is kept if it has objects in at least
    ``min_votes`` versions, and its mask is the pixel-wise majority vote: the pixels
    covered by its objects in at least ``min_votes`` versions. Pixels claimed by two kept
    groups go to the one with more votes (the earlier group on ties).

    Parameters
    ----------
    label_images : sequence of numpy.ndarray
        Integer label images of identical shape (0 = background).
    iou_threshold : float, optional
        Minimal IoU for two objects to be the same object. Default 0.5.
    min_votes : int, optional
        Number of versions an object (and a pixel) must be present in; defaults to a
        strict majority, ``len(label_images) // 2 + 1``.

    Returns
    -------
    numpy.ndarray
        int32 label image numbered 1..n, groups in the order of the first version's labels.
        Identical inputs give back the input (relabelled 1..n if it was not already).
    """
    stack, min_votes = _check_label_images(label_images, min_votes)
    members = _group_objects(stack, iou_threshold)
    return _vote(members, stack[0].shape, min_votes)
