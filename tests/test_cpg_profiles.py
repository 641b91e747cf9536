"""Tests of i2r_utils.cpg_profiles: the fetched cpg0017 well profiles in the real-profile layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from i2r_utils import realprofiles
from i2r_utils.columns import feature_columns
from i2r_utils.cpg_profiles import CPG_PROFILES_FILE, load_cpg_profiles
from i2r_utils.io import InputError
from i2r_utils.profile_benchmark import evaluate_profiles
from i2r_utils.realprofiles import CONTROL, META

#: construct, gene, role of the wells of one plate (as in the Rohban plate map)
WELLS = [
    ("EMPTY_", "EMPTY", "Untreated"),
    ("LacZ_CTRL", "LacZ", "CTRL"),
    ("Luciferase_CTRL", "Luciferase", "CTRL"),
    ("eGFP_CTRL", "eGFP", "CTRL"),
    ("BRAF_WT.1", "BRAF", "Treated"),
    ("BRAF_V600E", "BRAF", "Treated"),
    ("JUN_WT.1", "JUN", "Treated"),
    ("JUN_WT.2", "JUN", "Treated"),
]


def merged_table(n_plates: int = 3, seed: int = 0) -> pd.DataFrame:
    """A merged table as the fetcher writes it: plate, well, plate-map columns, features."""
    rng = np.random.default_rng(seed)
    effect = {"BRAF": np.array([3.0, 0, 1]), "JUN": np.array([0, 3.0, -1])}
    rows = []
    for p in range(n_plates):
        for i, (construct, gene, role) in enumerate(WELLS):
            x = effect.get(gene, np.zeros(3)) + rng.normal(0, 0.2, 3)
            rows.append((str(41744 + p), f"A{i + 1:02d}", gene, construct, role, *x))
    cols = ["Metadata_Plate", "Metadata_Well", "Metadata_gene_name", "Metadata_pert_name",
            "Metadata_ASSAY_WELL_ROLE", "Cells_A", "Nuclei_B", "Cytoplasm_C"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _write(folder, df):
    folder.mkdir(parents=True, exist_ok=True)
    df.to_parquet(folder / CPG_PROFILES_FILE, index=False)
    return folder


def test_load_cpg_profiles_maps_the_screen_onto_the_profile_layout(tmp_path):
    wells = load_cpg_profiles(_write(tmp_path, merged_table()))
    assert wells.columns[: len(META)].tolist() == META
    assert feature_columns(wells) == ["Cells_A", "Nuclei_B", "Cytoplasm_C"]
    assert len(wells) == 3 * 7  # the EMPTY wells are left out
    control = wells["Metadata_Role"] == "CTRL"
    assert (wells.loc[control, "Metadata_Condition"] == CONTROL).all()
    assert wells.loc[control, "Metadata_MoA"].isna().all()
    assert set(wells.loc[control, "Metadata_Gene"]) == {"LacZ", "Luciferase", "eGFP"}
    treated = wells[~control]
    assert (treated["Metadata_Condition"] == treated["Metadata_Construct"]).all()
    assert (treated["Metadata_MoA"] == treated["Metadata_Gene"]).all()
    assert (wells["Metadata_Batch"] == wells["Metadata_Plate"]).all()
    kept = load_cpg_profiles(tmp_path, keep_untreated=True)
    empty = kept[kept["Metadata_Role"] == "Untreated"]
    assert len(empty) == 3 and (empty["Metadata_Condition"] == "EMPTY_").all()
    assert empty["Metadata_MoA"].isna().all()


def test_the_profile_evaluation_runs_on_the_loaded_table(tmp_path, monkeypatch):
    """Registered as a profile set, the table goes through the evaluation of the notebook."""
    _write(tmp_path, merged_table(n_plates=4))
    monkeypatch.setitem(realprofiles.LOADERS, "cpg0017", load_cpg_profiles)
    wells = realprofiles.load_profile_set("cpg0017", tmp_path)
    metrics = evaluate_profiles(wells, "Metadata_Condition", 0.1)
    assert metrics["replicate_groups"] == 4 and metrics["moa_queries"] == 4
    assert metrics["replicate_mAP"] > 0.5  # 4 replicate wells per construct, clear effects
    assert metrics["moa_mAP"] > 0.5  # the other construct of the same gene is found first
    # a construct's wells sit on every plate, so its consensus has no other-batch neighbour
    assert metrics["nsb_n"] == 0


def test_non_finite_features_are_left_out_and_bad_tables_refused(tmp_path, caplog):
    df = merged_table()
    df.loc[3, "Nuclei_B"] = np.nan
    wells = load_cpg_profiles(_write(tmp_path / "a", df))
    assert feature_columns(wells) == ["Cells_A", "Cytoplasm_C"]
    assert "1 of 3 feature columns" in caplog.text
    with pytest.raises(InputError, match="not found; fetch the profiles first"):
        load_cpg_profiles(tmp_path / "nothing")
    with pytest.raises(InputError, match=r"lacks columns \['Metadata_pert_name'\]"):
        load_cpg_profiles(_write(tmp_path / "b", df.drop(columns="Metadata_pert_name")))
    no_ctrl = df[df["Metadata_ASSAY_WELL_ROLE"] != "CTRL"]
    with pytest.raises(InputError, match="no control well"):
        load_cpg_profiles(_write(tmp_path / "c", no_ctrl))


def test_the_real_screen_wells_load(shared_data, tmp_path):
    """The screen's real per-well table (6 plates, real roles and names) through the loader."""
    counts = pd.read_csv(
        shared_data / "orf_rohban2017" / "cellpainting_cells_count_per_well.tsv",
        sep="\t",
        dtype=str,
        keep_default_na=False,
    )
    gene = counts["Image_Metadata_GeneSymbol"]
    table = pd.DataFrame({
        "Metadata_Plate": counts["Image_Metadata_Plate"],
        "Metadata_Well": counts["Image_Metadata_Well"].str.upper(),
        "Metadata_gene_name": gene,
        "Metadata_pert_name": gene + "_" + counts["Image_Metadata_AlleleDesc"],
        "Metadata_ASSAY_WELL_ROLE": counts["Image_Metadata_ASSAY_WELL_ROLE"],
        "Cells_Count": counts["Cells_Count"].astype(float),
    })  # fmt: skip
    wells = load_cpg_profiles(_write(tmp_path, table))
    roles = counts["Image_Metadata_ASSAY_WELL_ROLE"].value_counts()
    assert len(wells) == roles["Treated"] + roles["CTRL"]  # the untreated wells are left out
    assert (wells["Metadata_Condition"] == CONTROL).sum() == roles["CTRL"]
    assert {"BRAF", "JUN", "RAF1", "SMAD4", "SREBF1"} <= set(wells["Metadata_MoA"])
    per_construct = wells[wells["Metadata_Condition"] != CONTROL].groupby("Metadata_Condition")
    assert per_construct["Metadata_Plate"].nunique().min() == 6  # every construct on each plate
