# %% [markdown]
# # 03 Train the image encoder without the held-out condition
# A CNN learns to classify the condition of each nucleus (weak supervision); the held-out
# condition's crops are removed before training, so the encoder has never seen it. Every
# nucleus is then embedded and aggregated: nucleus -> image (median) -> well (mean,
# standardised to the plate's EMPTY wells) -> condition (mean).
# Produces `out_dir/encoder.json`, `out_dir/condition_profiles.parquet`,
# `out_dir/well_profiles.parquet` (checkpoints in `work_dir/encoders/`, reused on reruns).

# %% tags=["parameters"]
condition = "BRAF"  # held-out condition
work_dir = "../results/tiny"  # results of this data set
out_dir = "../results/tiny/BRAF"  # results of this held-out condition
epochs = 8  # most training epochs
samples_per_class = 128  # crops drawn per class each epoch
seed = 0  # random seed of training

# %%
from pathlib import Path

import numpy as np
import pandas as pd

from i2r_utils.encoder import EncoderParams, embed, load_or_train_encoder
from i2r_utils.io import read_table, sha256_file, write_json, write_table
from i2r_utils.nuclei import load_crops
from i2r_utils.profiles import IMAGE_KEYS, condition_profiles

nuc_dir = Path(work_dir) / "nuclei"
nuclei = read_table(nuc_dir / "nuclei.parquet")
if condition not in set(nuclei.Metadata_Condition):
    raise ValueError(f"held-out condition {condition!r} is not in the screen")
crops = load_crops(nuc_dir, nuclei)
labels = nuclei.Metadata_Condition.to_numpy()
wells = (nuclei.Metadata_Plate + "/" + nuclei.Metadata_Well).to_numpy()
params = EncoderParams(epochs=epochs, samples_per_class=samples_per_class, seed=seed)
model, info = load_or_train_encoder(
    crops, labels, wells, [condition], Path(work_dir) / "encoders",
    data_key=sha256_file(nuc_dir / "nuclei.parquet"), params=params,
)
assert condition not in info["classes"], "leak: the held-out condition was a training class"
print(f"validation balanced accuracy {info['val_balanced_accuracy']:.3f} "
      f"(chance {info['chance']:.3f}); reused checkpoint: {info['reused']}")

# %%
emb = embed(model, crops)
table = pd.concat(
    [nuclei[IMAGE_KEYS].reset_index(drop=True),
     pd.DataFrame(emb, columns=[f"cnn_{i}" for i in range(emb.shape[1])])],
    axis=1,
)
well_prof, cond_prof = condition_profiles(table)
write_table(well_prof, Path(out_dir) / "well_profiles.parquet")
write_table(cond_prof, Path(out_dir) / "condition_profiles.parquet")
write_json({k: v for k, v in info.items()}, Path(out_dir) / "encoder.json")
cond_prof.iloc[:, :3].head()

# %%
import matplotlib.pyplot as plt

hist = pd.DataFrame(info["history"])
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(hist.epoch, hist.val_bacc, marker="o", label="validation (held-out wells)")
ax.axhline(info["chance"], ls="--", c="k", label="chance")
ax.set_xlabel("epoch"); ax.set_ylabel("balanced accuracy"); ax.legend(frameon=False)
np.round(hist, 3)
