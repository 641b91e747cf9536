"""i2r_utils: the thin utility package of the Image2Reg research compendium.

Modules
-------
columns     ``Metadata_`` column convention (split metadata from features).
io          reading and validating images, masks and metadata; atomic writes; checksums.
simulate    the embedded synthetic over-expression screen with known truth.
nuclei      nucleus filtering and 64x64 single-nucleus crops.
encoder     weakly supervised CNN image encoder and nucleus embeddings.
profiles    aggregation nucleus -> image -> well -> condition and control normalisation.
genes       gene-gene network loading and graph-autoencoder gene embeddings.
translation kernel ridge regression with the ReLU NTK, ranking and top-k metrics.
provenance  run manifests: git commit, parameters, input checksums.
plotting    figures shared by the notebooks.
segmentation classical and U-Net nucleus segmentation with test-time augmentation.
metrics     instance-segmentation metrics (mAP_DSB, AP at an IoU, pixel IoU).
features    hand-crafted chromatin features per nucleus (``Nuclei_<Family>_<Name>``).
screen      which conditions differ from control (grouped CV balanced accuracy, elbow).
fetch       checksummed, resumable downloads of the Image2Reg demo and Cell Painting Gallery.
"""

__version__ = "0.1.0"
