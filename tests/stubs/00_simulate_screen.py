# %% [markdown]
# # Stub 00: a pretend screen (tests of run_all.py and i2r_pipeline)
# Writes `data_dir/metadata.csv` (plates P1, P2; conditions EMPTY, A, B, C) and the files
# run_all.py checksums in manifests.

# %%
from pathlib import Path

# %% tags=["parameters"]
data_dir = "stub-data"  # screen folder
size = "tiny"  # screen size
seed = 0  # random seed

# %%
root = Path(data_dir)
(root / "network").mkdir(parents=True, exist_ok=True)
rows = ["Metadata_Plate,Metadata_Well,Metadata_Condition"]
for plate in ("P1", "P2"):
    for i, cond in enumerate(("EMPTY", "A", "B", "C")):
        rows.append(f"{plate},W{i:02d},{cond}")
(root / "metadata.csv").write_text("\n".join(rows) + "\n")
(root / "screen.json").write_text(f'{{"size": "{size}", "seed": {seed}}}\n')
(root / "network" / "edges.tsv").write_text("A\tB\n")
(root / "network" / "expression.csv").write_text("gene,s1\nA,1\nB,2\nC,3\n")
