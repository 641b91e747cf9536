# %% [markdown]
# # 00 Simulate the screen
# Generates (or reuses) the embedded synthetic over-expression screen: a gene network with
# expression node features, and rendered 16-bit chromatin fields with instance masks whose
# nuclear phenotypes depend smoothly on the over-expressed gene's network position.
# Produces `data_dir/{images,masks,network,truth}/`, `metadata.csv`, `screen.json`.

# %% tags=["parameters"]
data_dir = "../data/synthetic/tiny"  # screen folder (created if missing)
size = "tiny"  # "tiny" (seconds) or "default" (the main job)
seed = 0  # random seed of the simulator

# %%
import pandas as pd

from i2r_utils.columns import CONTROL
from i2r_utils.io import load_metadata, read_image
from i2r_utils.plotting import plot_fields
from i2r_utils.simulate import simulate_screen

simulate_screen(data_dir, size=size, seed=seed)
meta = load_metadata(data_dir)
truth = pd.read_csv(f"{data_dir}/truth/conditions.csv")
print(
    f"{len(meta)} images, {meta.Metadata_Plate.nunique()} plates, "
    f"{meta.Metadata_Condition.nunique()} conditions (incl. the control {CONTROL})"
)
truth.head()

# %% [markdown]
# ## A look at the fields
# One field per condition for a control and the first conditions.

# %%
show = meta.drop_duplicates("Metadata_Condition").head(8)
fig = plot_fields([read_image(p) for p in show.Metadata_ImagePath], list(show.Metadata_Condition))
