"""i2r_utils: the thin utility package of the Image2Reg research compendium.

Modules
-------
columns     ``Metadata_`` column convention (split metadata from features); CONTROL.
artifacts   where each artefact of a run lives (one function spells every result path).
io          reading and validating images, masks and metadata; atomic writes; checksums.
simulate    the embedded synthetic over-expression screen with known truth.
nuclei      nucleus filtering (fast path) and 64x64 single-nucleus crops, per plate.
encoder     weakly supervised ResNet18 encoder, K folds of held-out conditions, embeddings.
profiles    aggregation nucleus -> image -> well -> condition, ZCA sphering on controls.
evaluation  profile evaluation: mAP (copairs), folds of enrichment, hits in the top 1%.
genes       gene-gene network loading and graph-autoencoder gene embeddings.
translation kernel ridge regression with the ReLU NTK, ranking and top-k metrics.

plotting    figures shared by the notebooks.
segmentation classical and U-Net nucleus segmentation with test-time augmentation.
metrics     instance-segmentation metrics (mAP_DSB, AP at an IoU, pixel IoU).
features    hand-crafted chromatin features per nucleus (``Nuclei_<Family>_<Name>``).
screen      which conditions differ from control (grouped CV balanced accuracy, elbow).

"""

__version__ = "0.1.0"
