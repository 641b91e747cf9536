"""i2r_utils: the method library of the Image2Reg research compendium.

The notebooks tell the analysis; these modules hold the methods they reuse. No module knows
a notebook, a stage or the driver (``i2r_pipeline``).

Modules
-------
columns         ``Metadata_`` column convention (split metadata from features); ``CONTROL``.
artifacts       where each artefact of a run lives (one function spells every result path).
io              reading and validating images, masks and metadata; normalisation; atomic
                writes; checksums.
simulate        the embedded synthetic over-expression screen with known truth.
nucleus_filter  object measurements and the nucleus quality filters (``NucleusFilter``).
nuclei          per-image and per-plate preprocessing: filters, 64x64 crops, features.
features        hand-crafted chromatin features per nucleus (``Nuclei_<Family>_<Name>``).
classical       classical nucleus segmentation and the image checks of every method.
unet            a small U-Net: model, inference, model files (checksummed).
unet_training   U-Net training: augmented patches, early stopping, the run's model.
segmentation_data  annotated nuclei (DSB2018 fluorescence) and their fixed split by image.
tta             test-time augmentation over D4, de-augmentation and instance voting.
segmentation    one entry point over the segmentation methods, and their evaluation.
metrics         instance-segmentation metrics (mAP_DSB, pixel IoU, matching).
screen          which conditions differ from control; the fold assignment of conditions.
encoder         the CNN image encoder (ResNet18 or small), embeddings, save/load.
training        weakly supervised training of the encoder on one fold's conditions.
profiles        aggregation nucleus -> image -> well -> condition, ZCA sphering on controls.
evaluation      profile evaluation: mAP (copairs), folds of enrichment, hits in the top 1%.
interactome     gene-gene networks, pruning, the candidate interactome (shortest paths or
                prize-collecting Steiner tree).
gae             graph-autoencoder gene embeddings (sparse adjacency, image-cluster term),
                spectral baseline, link prediction.
genes           the gene-embedding table of a held-out condition (per-target autoencoder).
kernels         ReLU NTK (closed form), linear and RBF kernels.
ridge           the one closed-form leave-one-out kernel ridge core of both directions.
directions      image-to-gene and gene-to-image translation, direction choice, ranking.
baselines       the original Image2Reg ``--random`` baseline (full shuffle of both tables).
ranking         distances, ranks, rank fusion, top-k accuracy and summary metrics.
plotting        figure saving and the shared figure style.
runtime         threads of a notebook (pin_threads); the machine facts a result depends on.
"""

__version__ = "0.1.0"
