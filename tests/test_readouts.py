"""Per-gene readouts of the screen's ORFs, on the real files (orf_rohban2017)."""

import numpy as np
import pandas as pd
import pytest

from i2r_utils.io import InputError
from i2r_utils.readouts import (
    IMAGE2REG_IMPACTFUL,
    NAMED_GENES,
    idr_annotations,
    idr_profiles,
    l1000_signatures,
    load_l1000,
    own_landmark_check,
    readout_profiles,
    screen_genes,
    standardise_block,
)


@pytest.fixture(scope="module")
def orf(shared_data):
    folder = shared_data / "orf_rohban2017"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    return folder


def test_screen_genes_cover_the_impactful_and_named_genes(orf):
    genes = screen_genes(orf)
    assert len(genes) == 191 and genes == sorted(genes)
    assert set(IMAGE2REG_IMPACTFUL) <= set(genes) and set(NAMED_GENES) <= set(IMAGE2REG_IMPACTFUL)
    assert len(IMAGE2REG_IMPACTFUL) == 41


def test_l1000_signature_is_the_mean_of_wells_minus_plate_vector_controls(orf):
    values, meta = load_l1000(orf)
    sig = l1000_signatures(orf)
    gene = "BRAF"
    wells = meta.index[(meta.pert_type == "trt_oe") & (meta.gene == gene)]
    expected = []
    for w in wells:
        plate = meta.loc[w, "det_plate"]
        ctl = values[(meta.pert_type == "ctl_vector") & (meta.det_plate == plate)].mean()
        expected.append(values.loc[w] - ctl)
    expected = pd.concat(expected, axis=1).mean(axis=1)
    col = sig.columns[0][len("l1000_") :]
    assert sig.loc[gene, f"l1000_{col}"] == pytest.approx(expected[col])
    assert sig.attrs["n_wells"][gene] == len(wells) >= 2


def test_own_landmark_removed_both_ways(orf):
    check = own_landmark_check(orf)
    # the leak is real: for several genes their own landmark is the highest of all genes
    assert (check["own_rank"] == 1).sum() >= 5
    dropped = l1000_signatures(orf, "drop_targets", targets=["ZZZ"])
    for g in check["gene"]:
        assert f"l1000_{g}" not in dropped.columns
    assert dropped.shape[1] == 978 - len(check)
    masked = l1000_signatures(orf, "mask_own")
    assert masked.shape[1] == 978
    top = check.sort_values("own_rank")["gene"].iloc[0]
    assert masked.loc[top, f"l1000_{top}"] == 0.0
    other = masked.index[masked.index != top][0]
    assert masked.loc[other, f"l1000_{top}"] != 0.0
    with pytest.raises(InputError, match="own_landmark"):
        l1000_signatures(orf, "keep")


def test_idr_annotation_vector_signs_density_and_cluster(orf):
    ann = idr_annotations(orf)
    assert len(ann) == 325
    row = ann[ann["allele"] == "CEBPA_WT.1"].iloc[0]
    assert row["idr_slightly_elongated"] == 1 and row["idr_extremely_elongated"] == -1
    assert row["idr_cell_density"] == -1 and row["idr_cluster_18"] == 1
    clusters = ann.filter(like="idr_cluster_")
    assert set(clusters.sum(axis=1).unique()) <= {0.0, 1.0}
    prof = idr_profiles(orf)
    assert len(prof) == 190 and not prof.isna().any().any()
    cebpa = ann[ann.gene == "CEBPA"].drop(columns=["gene", "allele"]).mean()
    assert np.allclose(prof.loc["CEBPA"], cebpa)


def test_both_blocks_standardised_to_equal_weight(orf):
    both = readout_profiles(orf, "both")
    l1000 = both.filter(like="l1000_").to_numpy()
    idr = both.filter(like="idr_").to_numpy()
    for block in (l1000, idr):
        assert np.allclose(block.mean(0), 0, atol=1e-9)
        assert (block**2).sum(1).mean() == pytest.approx(1.0)
    assert set(both.index) == set(readout_profiles(orf, "l1000").index) & set(
        idr_profiles(orf).index
    )
    assert standardise_block(pd.DataFrame({"a": [1.0, 1.0]})).abs().sum().sum() == 0
    with pytest.raises(InputError, match="readout"):
        readout_profiles(orf, "rna")


def test_missing_folder_is_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="orf_rohban2017"):
        readout_profiles(tmp_path, "l1000")
