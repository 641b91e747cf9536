"""Tests of i2r_pipeline.fetch.cpg_profiles against a local moto S3 server (127.0.0.1 only).

The fake bucket copies the real cpg0017 layout (checked against the Gallery's DVC repository
broadinstitute/cpg0017-rohban-pathways, see the audit): per-plate files
``.../workspace/profiles/2013_10_11_SIGMA2_Pilot/<plate>/<plate>_<stage>.csv.gz`` with
lower-case wells (``a01``) and integer plates, annotated stages carrying the plate map's
columns with a ``Metadata_`` prefix (missing values empty), and the plate map
``TAORF_REFERENCE_SET.txt`` (tab separated, carriage-return line ends, ``NA`` for missing).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import numpy as np
import pandas as pd
import pytest
from fetch_servers import LOCAL, client_with_log, closed_port

from i2r_pipeline.fetch.cpg import ROHBAN_BATCH, ROHBAN_PLATEMAP_KEY
from i2r_pipeline.fetch.cpg_profiles import (
    MANIFEST_FILE,
    ROHBAN_PROFILE_PREFIX,
    fetch_cpg_profiles,
    merge_plate_profiles,
    profile_plan,
)
from i2r_utils.cpg_profiles import CPG_PROFILES_FILE, load_cpg_profiles
from i2r_utils.io import InputError
from i2r_utils.realprofiles import CONTROL

pytestmark = pytest.mark.usefixtures("no_real_aws")  # fixtures: tests/conftest.py

STAGE = "normalized_feature_select_batch"
#: A subset of the real plate map (TAORF_REFERENCE_SET.txt), same columns and values.
PLATEMAP_ROWS = [
    ("a01", "EMPTY", "EMPTY_", "NA", "Untreated", "NA"),
    ("a03", "ATF4", "ATF4_WT.1", "ccsbBroad304_00117", "Treated", "468"),
    ("a12", "Luciferase", "Luciferase_CTRL", "NA", "CTRL", "NA"),
    ("a15", "LacZ", "LacZ_CTRL", "NA", "CTRL", "NA"),
    ("d04", "BRAF", "BRAF_V600E", "BRDN0000464987", "Treated", "673"),
    ("l11", "BRAF", "BRAF_WT.1", "BRDN0000464953", "Treated", "673"),
    ("e20", "JUN", "JUN_WT.1", "ccsbBroad304_14682", "Treated", "3725"),
    ("f21", "JUN", "JUN_WT.2", "BRDN0000464926", "Treated", "3725"),
]
PM_COLS = ["well_position", "gene_name", "pert_name", "broad_sample", "ASSAY_WELL_ROLE", "GeneID"]
FEATURES = ["Cells_AreaShape_Area", "Cytoplasm_Intensity_MeanIntensity_DNA", "Nuclei_Texture_X"]


def platemap_bytes(rows=PLATEMAP_ROWS) -> bytes:
    """The plate map as the Gallery stores it: TSV with carriage-return line ends."""
    lines = ["\t".join(PM_COLS[:4] + ["cell_line"] + PM_COLS[4:])]
    lines += ["\t".join([*r[:4], "U2OS", *r[4:]]) for r in rows]
    return "\r".join(lines).encode()


def profile_table(plate: str, seed: int, annotated: bool = True) -> pd.DataFrame:
    """Wells of one plate as the profiling recipe writes them (annotated or not)."""
    rng = np.random.default_rng(seed)
    pm = pd.DataFrame(PLATEMAP_ROWS, columns=PM_COLS)
    gene_effect = pm["gene_name"].map({"BRAF": 3.0, "JUN": -3.0, "ATF4": 1.0}).fillna(0.0)
    df = pd.DataFrame({"Metadata_Plate": int(plate), "Metadata_Well": pm["well_position"]})
    if annotated:  # pycytominer annotate: prefixed columns, NA written as empty, GeneID float
        for col in PM_COLS[1:]:
            values = pm[col].replace("NA", np.nan)
            df[f"Metadata_{col}"] = values.astype(float) if col == "GeneID" else values
    for i, feat in enumerate(FEATURES):
        df[feat] = gene_effect * (i + 1) + rng.normal(0, 0.3, len(pm))
    return df


def gz_csv(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as fh:
        fh.write(df.to_csv(index=False).encode())
    return buf.getvalue()


def plate_prefix(plate: str) -> str:
    return ROHBAN_PROFILE_PREFIX.format(batch=ROHBAN_BATCH, plate=plate)


@pytest.fixture
def profiles_bucket(moto_url):
    """A fresh bucket with three plates of profiles (three stages each) and the plate map."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    bucket = f"cpgp-{len(s3.list_buckets()['Buckets'])}"
    s3.create_bucket(Bucket=bucket)
    objects = {ROHBAN_PLATEMAP_KEY: platemap_bytes()}
    for seed, plate in enumerate(["41744", "41754", "41755"]):
        annotated = gz_csv(profile_table(plate, seed))
        objects[plate_prefix(plate) + f"{plate}_{STAGE}.csv.gz"] = annotated
        objects[plate_prefix(plate) + f"{plate}_augmented.csv.gz"] = annotated + b"x"
        objects[plate_prefix(plate) + f"{plate}.csv.gz"] = gz_csv(profile_table(plate, 9, False))
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, ACL="public-read")
    return bucket, objects


def test_fetch_cpg_profiles_end_to_end(moto_url, profiles_bucket, tmp_path):
    bucket, objects = profiles_bucket
    dest = tmp_path / "cpg0017_profiles"
    merged = fetch_cpg_profiles(
        dest, ["41744", "41754"], bucket=bucket, endpoint_url=moto_url, progress=False
    )
    for plate in ("41744", "41754"):  # the chosen stage, byte for byte
        key = plate_prefix(plate) + f"{plate}_{STAGE}.csv.gz"
        assert (dest / plate / f"{plate}_{STAGE}.csv.gz").read_bytes() == objects[key]
    assert (dest / "platemaps" / "TAORF_REFERENCE_SET.txt").read_bytes() == platemap_bytes()
    assert not list(dest.rglob("*.part"))
    written = pd.read_parquet(dest / CPG_PROFILES_FILE)
    pd.testing.assert_frame_equal(written, merged)
    assert list(merged.columns[:2]) == ["Metadata_Plate", "Metadata_Well"]
    assert merged.columns[-3:].tolist() == FEATURES
    assert len(merged) == 2 * len(PLATEMAP_ROWS)
    assert merged["Metadata_Plate"].tolist()[:1] == ["41744"]
    row = merged.set_index(["Metadata_Plate", "Metadata_Well"]).loc[("41754", "D04")]
    assert (row["Metadata_gene_name"], row["Metadata_broad_sample"]) == ("BRAF", "BRDN0000464987")
    assert merged.loc[merged.Metadata_Well == "A12", "Metadata_broad_sample"].eq("NA").all()
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    assert [o["size"] for o in manifest["objects"]] == [
        len(objects[plate_prefix(p) + f"{p}_{STAGE}.csv.gz"]) for p in ("41744", "41754")
    ]
    assert (manifest["wells"], manifest["features"]) == (16, 3)
    # the fake files are not the published ones: their md5 differs from the DVC pins
    assert [o["matches_pin"] for o in manifest["objects"]] == [False, False]
    # the real-profile loader reads what the fetcher wrote
    wells = load_cpg_profiles(dest)
    assert len(wells) == 14  # the two EMPTY wells are left out
    assert (wells["Metadata_Condition"] == CONTROL).sum() == 4
    assert set(wells["Metadata_MoA"].dropna()) == {"ATF4", "BRAF", "JUN"}


def test_fetch_cpg_profiles_unannotated_stage_gets_the_plate_map(
    moto_url, profiles_bucket, tmp_path
):
    bucket, objects = profiles_bucket
    body = objects[plate_prefix("41755") + "41755.csv.gz"]
    pins = {"41755.csv.gz": (hashlib.md5(body).hexdigest(), len(body))}
    merged = fetch_cpg_profiles(
        tmp_path / "d",
        ["41755"],
        bucket=bucket,
        endpoint_url=moto_url,
        stage="",
        progress=False,
        pins=pins,
    )
    assert merged.loc[merged.Metadata_Well == "E20", "Metadata_pert_name"].item() == "JUN_WT.1"
    assert (tmp_path / "d" / "41755" / "41755.csv.gz").is_file()
    manifest = json.loads((tmp_path / "d" / MANIFEST_FILE).read_text())
    assert manifest["objects"][0]["matches_pin"] is True


def test_rerun_fetches_nothing_and_repairs_a_corrupt_file(moto_url, profiles_bucket, tmp_path):
    bucket, objects = profiles_bucket
    dest = tmp_path / "p"
    kw = {"bucket": bucket, "progress": False, "backoff": 0.01}
    fetch_cpg_profiles(dest, ["41744", "41754"], endpoint_url=moto_url, **kw)
    client, calls = client_with_log(moto_url)
    fetch_cpg_profiles(dest, ["41744", "41754"], client=client, **kw)
    assert calls == []  # complete, verified files are kept
    path = dest / "41754" / f"41754_{STAGE}.csv.gz"
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # same size, wrong md5
    path.write_bytes(bytes(data))
    fetch_cpg_profiles(dest, ["41744", "41754"], client=client, **kw)
    assert [c["Key"].rsplit("/", 1)[-1] for c in calls] == [path.name]
    assert path.read_bytes() == objects[plate_prefix("41754") + path.name]


def test_an_interrupted_download_is_resumed(moto_url, profiles_bucket, tmp_path):
    bucket, objects = profiles_bucket
    dest = tmp_path / "p"
    body = objects[plate_prefix("41744") + f"41744_{STAGE}.csv.gz"]
    part = dest / "41744" / f"41744_{STAGE}.csv.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:100])
    client, calls = client_with_log(moto_url)
    fetch_cpg_profiles(dest, ["41744"], bucket=bucket, client=client, progress=False)
    profile_gets = [c for c in calls if c["Key"].endswith(".csv.gz")]
    assert [c.get("Range") for c in profile_gets] == ["bytes=100-"]
    assert (dest / "41744" / f"41744_{STAGE}.csv.gz").read_bytes() == body


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"plates": ["../41744"]}, "plate"),
        ({"plates": ["/etc"]}, "plate"),
        ({"plates": ["41744/.."]}, "plate"),
        ({"plates": [".."]}, "plate"),
        ({"plates": ["41744", "a\\b"]}, "plate"),
        ({"plates": ["41744"], "stage": "../../x"}, "stage"),
        ({"plates": ["41744"], "batch": "b/../../c"}, "batch"),
        ({"plates": ["41744"], "platemap": "metadata/platemaps/.."}, "plate map"),
    ],
)
def test_unsafe_names_are_refused_before_any_request(tmp_path, kwargs, what):
    dest = tmp_path / "dest"
    url = f"http://{LOCAL}:{closed_port()}"  # a request would fail with another error
    with pytest.raises(InputError, match=f"^{what} .* cannot be used as a local"):
        fetch_cpg_profiles(dest, endpoint_url=url, progress=False, retries=0, **kwargs)
    assert not dest.exists()


def test_plan_checks_the_prefix_and_repeated_plates(tmp_path):
    with pytest.raises(InputError, match="placeholder"):
        profile_plan(tmp_path, ["41744"], prefix="cpg0017/profiles/")
    with pytest.raises(InputError, match="each plate once"):
        profile_plan(tmp_path, ["41744", "41744"])
    with pytest.raises(InputError, match="each plate once"):
        profile_plan(tmp_path, [])
    plan = profile_plan(tmp_path, [41744], stage="augmented")
    assert plan["key"].item() == (
        "cpg0017-rohban-pathways/broad/workspace/profiles/2013_10_11_SIGMA2_Pilot/41744/"
        "41744_augmented.csv.gz"
    )
    assert plan["path"].item() == tmp_path / "41744" / "41744_augmented.csv.gz"


def test_a_missing_plate_or_stage_names_what_the_folder_holds(moto_url, profiles_bucket, tmp_path):
    bucket, _ = profiles_bucket
    kw = {"bucket": bucket, "endpoint_url": moto_url, "progress": False}
    with pytest.raises(InputError, match=r"41757_normalized.* does not exist; .* nothing"):
        fetch_cpg_profiles(tmp_path / "a", ["41744", "41757"], **kw)
    with pytest.raises(InputError, match=r"holds \['41744.csv.gz', '41744_augmented.csv.gz'"):
        fetch_cpg_profiles(tmp_path / "b", ["41744"], stage="normalized_negcon", **kw)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_plate_map_that_disagrees_with_the_annotation_is_refused(
    moto_url, profiles_bucket, tmp_path
):
    bucket, _ = profiles_bucket
    rows = [r if r[0] != "d04" else ("d04", "KRAS", *r[2:]) for r in PLATEMAP_ROWS]
    local = tmp_path / "TAORF_REFERENCE_SET.txt"
    local.write_bytes(platemap_bytes(rows))
    with pytest.raises(InputError, match=r"Metadata_gene_name of 1 wells .*41744, well D04"):
        fetch_cpg_profiles(
            tmp_path / "d",
            ["41744"],
            bucket=bucket,
            endpoint_url=moto_url,
            platemap=local,
            progress=False,
        )
    assert not (tmp_path / "d" / CPG_PROFILES_FILE).exists()


def test_merge_plate_profiles_keeps_shared_features_and_checks_wells():
    pm = pd.DataFrame(PLATEMAP_ROWS, columns=PM_COLS)
    a = profile_table("41744", 0, annotated=False)
    b = profile_table("41754", 1, annotated=False).drop(columns=FEATURES[2])
    for t, plate in ((a, "41744"), (b, "41754")):
        t["Metadata_Plate"] = plate
    merged = merge_plate_profiles({"41744": a, "41754": b}, pm)
    assert merged.columns[-2:].tolist() == FEATURES[:2]
    assert merged["Metadata_Well"].str.fullmatch(r"[A-P]\d\d").all()
    b.loc[0, "Metadata_Well"] = "p24"
    with pytest.raises(InputError, match=r"wells \['P24'\] .* not in the plate map"):
        merge_plate_profiles({"41744": a, "41754": b}, pm)
    with pytest.raises(InputError, match="no column 'Well'"):
        merge_plate_profiles({"41744": a}, pm, well_col="Well")


def test_the_real_screen_has_one_plate_layout(shared_data):
    """The real per-well table of the screen (6 plates x 384 wells) fits one plate map.

    This is why the fetcher joins one plate map on the well alone: the layout of plate 41744,
    used as the plate map, annotates every other plate without a disagreement; shifting it by
    one well does not.
    """
    counts = pd.read_csv(
        shared_data / "orf_rohban2017" / "cellpainting_cells_count_per_well.tsv",
        sep="\t",
        dtype=str,
        keep_default_na=False,
    )
    table = pd.DataFrame({
        "Metadata_Plate": counts["Image_Metadata_Plate"],
        "Metadata_Well": counts["Image_Metadata_Well"].map(str.upper),
        "Metadata_gene_name": counts["Image_Metadata_GeneSymbol"],
        "Metadata_ASSAY_WELL_ROLE": counts["Image_Metadata_ASSAY_WELL_ROLE"],
        "Cells_Count": counts["Cells_Count"].astype(float),
    })  # fmt: skip
    tables = {p: t for p, t in table.groupby("Metadata_Plate")}
    first = tables["41744"]
    pm = pd.DataFrame({
        "well_position": first["Metadata_Well"].str.lower(),
        "gene_name": first["Metadata_gene_name"],
        "ASSAY_WELL_ROLE": first["Metadata_ASSAY_WELL_ROLE"],
    })  # fmt: skip
    merged = merge_plate_profiles(tables, pm)
    assert len(merged) == 6 * 384 and merged["Metadata_Plate"].nunique() == 6
    shifted = pm.assign(gene_name=np.roll(pm["gene_name"].to_numpy(), 1))
    with pytest.raises(InputError, match="Metadata_gene_name of .* differs"):
        merge_plate_profiles(tables, shifted)


def test_data_cpg_profiles_command(moto_url, profiles_bucket, tmp_path, capsys):
    """``run_all.py data cpg-profiles`` fetches, merges and names the command that evaluates."""
    from i2r_pipeline.fetch.cli import main as data_main

    bucket, _ = profiles_bucket
    dest = tmp_path / "profiles"
    argv = ["cpg-profiles", "--dest", str(dest), "--plates", "41744,41755", "--bucket", bucket,
            "--endpoint-url", moto_url, "--quiet"]  # fmt: skip
    assert data_main(argv) == 0
    out = capsys.readouterr().out
    assert "16 wells of 2 plates, 3 features" in out and "--dataset rohban_profiles" in out
    assert len(load_cpg_profiles(dest)) == 14
    assert data_main([*argv[:-1], "--plates", "../x"]) == 1  # a plate name that is a path
    assert "error" in capsys.readouterr().err
