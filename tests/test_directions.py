import numpy as np
import pandas as pd
import pytest
from reference_translation import KernelRidge, held_out_result, permutation_ranks, permuted_ranks

from i2r_utils.columns import feature_columns
from i2r_utils.directions import (
    DIRECTIONS,
    GeneToImage,
    ImageToGene,
    choose_direction,
    inner_direction_scores,
    rank_candidates,
    training_set,
)
from i2r_utils.io import InputError
from i2r_utils.ranking import (
    distances,
    fuse_ranks,
    ranking_table,
    ranks_from_scores,
    ranks_of,
    true_rank,
)
from i2r_utils.ridge import permutations


def _screen(n_genes=60, n_cond=30, noise=0.05, seed=0):
    """Candidate embeddings and condition profiles with a learnable gene -> image map."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    emb = pd.DataFrame(rng.normal(size=(n_genes, 4)), index=genes)
    emb = emb.div(np.linalg.norm(emb, axis=1), axis=0)
    mix = rng.normal(size=(4, 6))
    conds = genes[:n_cond]
    prof = pd.DataFrame(emb.loc[conds].to_numpy() @ mix + noise * rng.normal(size=(n_cond, 6)))
    prof.columns = [f"cnn_{i}" for i in range(6)]
    prof.insert(0, "Metadata_Condition", conds)
    ctrl = pd.DataFrame([["EMPTY", *np.zeros(6)]], columns=prof.columns)
    return emb, pd.concat([prof, ctrl], ignore_index=True), conds


def _smooth_screen(n_genes=60, n_train=25, d=5, seed=0):
    """Genes on a 2-D embedding; profiles a smooth function of the embedding plus noise."""
    rng = np.random.default_rng(seed)
    emb = rng.uniform(-1, 1, size=(n_genes, 2))
    w = rng.normal(size=(2, d))
    profiles = np.sin(2 * emb @ w) + 0.01 * rng.normal(size=(n_genes, d))
    genes = pd.DataFrame(emb, index=[f"G{i}" for i in range(n_genes)])
    train = rng.choice(n_genes, n_train, replace=False)
    return genes, profiles, train


# --- image to gene ---------------------------------------------------------------------


def test_inner_cv_never_touches_the_held_out_row():
    emb, prof, conds = _screen()
    held = conds[0]
    a = training_set(prof, emb, held, conds)
    prof2 = prof.copy()
    prof2.loc[prof2.Metadata_Condition == held, "cnn_0"] = 1e6  # corrupt the held-out row
    b = training_set(prof2, emb, held, conds)
    assert held not in a["conditions"] and "EMPTY" not in a["conditions"]
    assert a["genes"] == [c.upper() for c in a["conditions"]]
    assert np.array_equal(a["x_train"], b["x_train"]) and not np.array_equal(
        a["x_test"], b["x_test"]
    )
    ta = ImageToGene("ntk", 2, (0.01, 0.1, 1.0)).fit(a["x_train"], a["y_train"])
    tb = ImageToGene("ntk", 2, (0.01, 0.1, 1.0)).fit(b["x_train"], b["y_train"])
    assert ta.alpha_ == tb.alpha_ and ta.cv_mse_ == tb.cv_mse_
    assert np.array_equal(ta.ridge_.dual_, tb.ridge_.dual_) and np.array_equal(ta.mu_, tb.mu_)
    # the chosen alpha minimises the LOO error obtained by refitting without each row
    y = a["y_train"]
    errs = {}
    for alpha in (0.01, 0.1, 1.0):
        e = 0.0
        for i in range(len(ta.x_)):
            keep = np.arange(len(ta.x_)) != i
            m = KernelRidge(alpha, "ntk", 2, bias=1.0).fit(ta.x_[keep], y[keep])
            e += ((m.predict(ta.x_[i : i + 1]) - y[i]) ** 2).mean()
        errs[alpha] = e / len(ta.x_)
    assert ta.alpha_ == min(errs, key=errs.get)
    assert np.allclose([ta.cv_mse_[k] for k in errs], list(errs.values()))
    # and the closed-form LOO predictions at that alpha are those refits
    m = KernelRidge(ta.alpha_, "ntk", 2, bias=1.0).fit(ta.x_[1:], y[1:])
    np.testing.assert_allclose(ta.loo_predictions()[0], m.predict(ta.x_[:1])[0], atol=1e-8)


def test_alpha_fallback_and_single_value():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2, 5)), rng.normal(size=(2, 3))
    assert ImageToGene(alphas=(0.001, 0.1)).fit(x, y).alpha_ == 1.0  # too few rows for LOO
    assert ImageToGene(alphas=(0.3,)).fit(x, y).alpha_ == 0.3
    tr = ImageToGene(alphas=(0.001, 0.1)).fit(x, y)
    emb = pd.DataFrame(rng.normal(size=(7, 3)))
    assert tr.permuted_distances(x[:1], emb, permutations(2, 3, 0)).shape == (3, 7)
    x = rng.normal(size=(6, 4)) * [1, 10, 100, 0]
    for scaling in ("global", "feature"):
        tr = ImageToGene(scaling=scaling).fit(x, rng.normal(size=(6, 2)))
        assert np.isclose((tr.x_**2).sum(1).mean(), 0.75 if scaling == "feature" else 1.0)
    raw = ImageToGene(scaling="none").fit(x, rng.normal(size=(6, 2)))
    assert np.array_equal(raw.x_, x)  # the original's raw inputs
    with pytest.raises(ValueError, match="scaling"):
        ImageToGene(scaling="zscore").fit(x, y[:1].repeat(6, 0))
    with pytest.raises(ValueError, match="matching"):
        ImageToGene().fit(x, y)


def test_learnable_mapping_beats_baselines():
    emb, prof, conds = _screen()
    ranks, perm, mean_emb = [], [], []
    for held in conds[:8]:
        ts = training_set(prof, emb, held, prof["Metadata_Condition"])
        assert len(ts["conditions"]) == 29
        _, res = held_out_result(ts, emb, held, kernel="linear", alphas=(0.001, 0.01), n_perm=50)
        ranks.append(res["true_rank"])
        perm.append(res["permutation_mean_rank"])
        mean_emb.append(res["mean_embedding_rank"])
        lo, hi = res["permutation_rank_band"]
        assert lo <= res["permutation_mean_rank"] <= hi
    assert np.mean(ranks) < 3 and np.mean(perm) > 15 and np.mean(mean_emb) > 10


def test_permutation_baseline_near_half_on_random_data():
    rng = np.random.default_rng(5)
    genes = [f"G{i}" for i in range(101)]
    emb = pd.DataFrame(rng.normal(size=(101, 8)), index=genes)
    emb = emb.div(np.linalg.norm(emb, axis=1), axis=0)
    x = rng.normal(size=(20, 10))  # training profiles unrelated to the genes
    y = emb.iloc[:20].to_numpy()
    means = []
    for i, g in enumerate(genes[20:60]):
        r = permutation_ranks(x, y, rng.normal(size=(1, 10)), emb, g, n_perm=50, seed=i)
        assert len(r) == 50 and r.min() >= 1 and r.max() <= 101
        means.append(r.mean())
    assert abs(np.mean(means) - 51) < 8  # (N + 1) / 2


def test_closed_form_loo_over_all_conditions_and_a_new_profile():
    emb, prof, conds = _screen(n_cond=12)
    ts = training_set(prof, emb, None, conds)
    assert ts["x_test"] is None and ts["conditions"] == conds
    model = ImageToGene("linear", alphas=(0.001,)).fit(ts["x_train"], ts["y_train"])
    assert ranks_of(model.loo_predictions(), emb, ts["genes"]).mean() < 3
    x = prof.loc[prof.Metadata_Condition == conds[2], feature_columns(prof)].to_numpy(float)
    assert true_rank(rank_candidates(x, emb, "image_to_gene", model), conds[2]) <= 2
    with pytest.raises(InputError, match="fewer than 2"):
        training_set(prof, emb, None, conds[:1])


# --- gene to image ---------------------------------------------------------------------


def test_gene_to_image_recovers_held_out_genes_of_a_smooth_screen():
    genes, profiles, train = _smooth_screen()
    held = [i for i in range(len(genes)) if i not in set(train)]
    model = GeneToImage().fit(genes, genes.index[train], profiles[train])
    ranks = [ranks_from_scores(model.distances(profiles[i]))[i] for i in held]
    # uniform random would give a median rank of about 30 of 60
    assert np.median(ranks) <= 3
    assert model.width_ in model.widths and model.noise_ in model.noises
    # the chosen pair has the smallest leave-one-out error of the grid
    assert model.cv_mse_[(model.width_, model.noise_)] == min(model.cv_mse_.values())


def test_gene_to_image_closed_form_loo_equals_refitting():
    genes, profiles, train = _smooth_screen(n_genes=30, n_train=12, seed=1)
    model = GeneToImage(widths=(1.0,), noises=(0.05, 0.5)).fit(
        genes, genes.index[train], profiles[train]
    )
    y = model.y_
    k = model.kernels_[1.0][np.ix_(model.pos_, model.pos_)]
    for s in (0.05, 0.5):
        errs = []
        for j in range(len(y)):
            m = np.arange(len(y)) != j
            coef = np.linalg.solve(k[np.ix_(m, m)] + s * np.eye(m.sum()), y[m])
            errs.append(y[j] - k[j, m] @ coef)
        assert model.cv_mse_[(1.0, s)] == pytest.approx(float((np.array(errs) ** 2).mean()))


def test_permuted_distances_identity_and_shuffle():
    genes, profiles, train = _smooth_screen()
    model = GeneToImage().fit(genes, genes.index[train], profiles[train])
    x = profiles[0]
    ident = model.permuted_distances(x, [np.arange(len(train))])
    np.testing.assert_allclose(ident[0], model.distances(x))
    rng = np.random.default_rng(3)
    perms = [rng.permutation(len(train)) for _ in range(20)]
    shuffled = model.permuted_distances(x, perms)
    assert shuffled.shape == (20, len(genes))
    # re-pairing breaks the relation: the true gene of a training row falls down the list
    i = train[0]
    own = ranks_from_scores(model.distances(profiles[i]))[i]
    perm_ranks = ranks_from_scores(model.permuted_distances(profiles[i], perms))[:, i]
    assert own <= 3 and np.median(perm_ranks) > own


def test_gene_to_image_input_errors():
    genes, profiles, train = _smooth_screen()
    with pytest.raises(KeyError, match="NOPE"):
        GeneToImage().fit(genes, ["NOPE", *genes.index[train[1:]]], profiles[train])
    with pytest.raises(ValueError, match="matching"):
        GeneToImage().fit(genes, genes.index[train], profiles[train[:-1]])
    # two training conditions: leave-one-out cannot choose, the fallback is used
    few = GeneToImage().fit(genes, genes.index[train[:2]], profiles[train[:2]])
    assert (few.width_, few.noise_) == few.fallback and few.cv_mse_ == {}
    assert np.isfinite(few.distances(profiles[0])).all()


# --- both directions -------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["gene_to_image", "two_way"])
def test_directions_and_their_baselines(direction):
    emb, prof, conds = _screen()
    ranks, perm_means = [], []
    for held in conds[:8]:
        ts = training_set(prof, emb, held, prof["Metadata_Condition"])
        ranking, res = held_out_result(ts, emb, held, direction, "linear", (0.001, 0.01), 30)
        assert res["direction"] == direction and res["comparison"][direction] == res["true_rank"]
        assert res["reverse"].width_ > 0 and res["reverse"].noise_ > 0
        assert ranking["rank"].tolist() == list(range(1, len(emb) + 1))
        assert ranking["distance"].is_monotonic_increasing
        ranks.append(res["true_rank"])
        perm_means.append(res["permutation_mean_rank"])
    assert np.mean(ranks) < 4 and np.mean(perm_means) > 10
    # the two-way ranking is the fusion of the two single-direction rankings
    ts = training_set(prof, emb, conds[0], prof["Metadata_Condition"])
    fwd = ImageToGene("linear").fit(ts["x_train"], ts["y_train"])
    rev = GeneToImage().fit(emb, ts["genes"], ts["x_train"])
    two = rank_candidates(ts["x_test"], emb, "two_way", fwd, rev).set_index("gene").loc[emb.index]
    one = {d: rank_candidates(ts["x_test"], emb, d, fwd, rev) for d in DIRECTIONS[:2]}
    d_fwd = one["image_to_gene"].set_index("gene").loc[emb.index, "distance"].to_numpy()
    d_rev = one["gene_to_image"].set_index("gene").loc[emb.index, "distance"].to_numpy()
    np.testing.assert_allclose(d_fwd, distances(fwd.predict(ts["x_test"]), emb.to_numpy())[0])
    mean_rank, fused = fuse_ranks(d_fwd, d_rev)
    np.testing.assert_array_equal(two["rank"].to_numpy(), fused)
    np.testing.assert_allclose(two["distance"].to_numpy(), mean_rank)
    np.testing.assert_allclose(two["distance_gene_to_image"].to_numpy(), d_rev)
    pd.testing.assert_frame_equal(one["gene_to_image"], ranking_table(emb.index, d_rev))
    # the baseline of a two-way ranking: one valid rank per permutation
    perms = permutations(len(ts["genes"]), 5, seed=1)
    r = permuted_ranks(ts["x_test"], emb, conds[0], perms, "two_way", fwd, rev)
    assert r.shape == (5,) and (r >= 1).all() and (r <= len(emb)).all()
    with pytest.raises(InputError, match="unknown direction"):
        rank_candidates(ts["x_test"], emb, "sideways", fwd, rev)
    with pytest.raises(ValueError, match="candidate table"):
        rank_candidates(ts["x_test"], emb.iloc[::-1], "two_way", fwd, rev)


def test_two_way_ranks_a_new_profile():
    emb, prof, conds = _screen()
    ts = training_set(prof, emb, None, conds[1:])
    assert conds[0] not in ts["conditions"]
    fwd = ImageToGene("linear", alphas=(0.001,)).fit(ts["x_train"], ts["y_train"])
    rev = GeneToImage().fit(emb, ts["genes"], ts["x_train"])
    x = prof.set_index("Metadata_Condition").loc[[conds[0]]].to_numpy(float)
    assert true_rank(rank_candidates(x, emb, "two_way", fwd, rev), conds[0]) <= 3


def test_auto_direction_is_chosen_by_leave_one_out_on_training_conditions():
    emb, prof, conds = _screen()
    ts = training_set(prof, emb, conds[0], prof["Metadata_Condition"])
    x, y, genes = ts["x_train"][:12], ts["y_train"][:12], ts["genes"][:12]
    scores = inner_direction_scores(x, y, genes, emb, "linear", alphas=(0.001, 0.01))
    assert set(scores) == set(DIRECTIONS)
    # the image-to-gene score by hand: refit without each row, rank its gene, mean log rank
    logs = []
    for j in range(len(x)):
        keep = np.arange(len(x)) != j
        t = ImageToGene("linear", 2, (0.001, 0.01)).fit(x[keep], y[keep])
        logs.append(np.log(ranks_of(t.predict(x[[j]]), emb, genes[j])[0]))
    assert scores["image_to_gene"] == pytest.approx(np.mean(logs))
    chosen = choose_direction(scores)
    assert scores[chosen] == min(scores.values())
    # the result records the direction used
    small = {**ts, "x_train": x, "y_train": y, "genes": genes}
    _, res = held_out_result(small, emb, conds[0], "auto", "linear", (0.001, 0.01))
    assert res["direction"] == chosen and res["inner_scores"] == pytest.approx(scores)
    assert res["true_rank"] == res["comparison"][chosen]
    # too few training conditions to choose: two-way
    assert inner_direction_scores(x[:3], y[:3], genes[:3], emb, "linear") == {}
    assert choose_direction({}) == "two_way"
    assert choose_direction({"image_to_gene": 1.0, "gene_to_image": 1.0, "two_way": 1.0}) == (
        "two_way"
    )


def test_read_translation_settings(tmp_path):
    import json

    from i2r_utils.directions import read_translation_settings

    default = read_translation_settings(tmp_path)
    assert default["representation"] == "cnn" and default["direction"] == "image_to_gene"
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "result.json").write_text("not json")
    (tmp_path / "B").mkdir()
    result = {
        "representation": "both", "direction": "two_way", "direction_requested": "auto",
        "kernel": "rbf", "depth": 1, "metric": "cosine", "alpha_grid": [0.1, 1.0],
    }  # fmt: skip
    (tmp_path / "B" / "result.json").write_text(json.dumps(result))
    got = read_translation_settings(tmp_path)  # A is unreadable: B is read
    assert got == {"representation": "both", "direction": "auto", "kernel": "rbf", "depth": 1,
                   "alphas": (0.1, 1.0), "metric": "cosine", "input_bias": False,
                   "input_scaling": "global", "gene_norm": "none"}  # fmt: skip
    result.update(input_bias=True, input_scaling="none", gene_norm="l2")
    (tmp_path / "B" / "result.json").write_text(json.dumps(result))
    got = read_translation_settings(tmp_path)
    assert (got["input_bias"], got["input_scaling"], got["gene_norm"]) == (True, "none", "l2")


# --- the original Image2Reg translation ------------------------------------------------


def _original_krr(x_train, y_train, x_test, lam=1.0):
    """The original demo's translation, written out: closed-form kernel on [x, 1], solve."""

    def k(a, b):
        a = np.hstack([a, np.ones((len(a), 1))])
        b = np.hstack([b, np.ones((len(b), 1))])
        dot = a @ b.T
        norms = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None]
        u = np.clip(dot / norms, -1, 1)
        t = np.arccos(u)
        return norms / np.pi * (np.sin(t) + (np.pi - t) * u) + dot * (np.pi - t) / np.pi

    coef = np.linalg.solve(k(x_train, x_train) + lam * np.eye(len(x_train)), y_train)
    return k(x_test, x_train) @ coef


def test_image_to_gene_reproduces_the_original_translation():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(12, 7)) * 3 + 5  # raw, uncentred inputs: scaling would matter
    y = rng.normal(size=(12, 4))
    x_test = rng.normal(size=(2, 7)) * 3 + 5
    model = ImageToGene("ntk", 1, (1.0,), input_bias=True, scaling="none").fit(x, y)
    assert model.alpha_ == 1.0 and model.cv_mse_ == {}
    want = _original_krr(x, y, x_test)
    assert np.allclose(model.predict(x_test), want, rtol=1e-6, atol=1e-9)  # eigh vs solve
    # i2r's default settings give a different prediction (the test can tell them apart)
    assert not np.allclose(ImageToGene("ntk", 1, (1.0,)).fit(x, y).predict(x_test), want)
    assert not np.allclose(
        ImageToGene("ntk", 1, (1.0,), scaling="none").fit(x, y).predict(x_test), want
    )
    # closed-form LOO of the faithful model equals refitting the original without each row
    loo = model.loo_predictions()
    for i in (0, 5):
        keep = np.arange(12) != i
        assert np.allclose(loo[i], _original_krr(x[keep], y[keep], x[[i]])[0])


def test_inner_direction_scores_pass_the_image_to_gene_settings():
    emb, prof, conds = _screen(n_cond=12, seed=2)
    ts = training_set(prof, emb, conds[0], conds)
    args = (ts["x_train"], ts["y_train"], ts["genes"], emb, "ntk", 1, (1.0,), "euclidean")
    plain = inner_direction_scores(*args)
    faithful = inner_direction_scores(*args, scaling="none", input_bias=True)
    assert set(plain) == set(faithful) == set(DIRECTIONS)
    assert plain["gene_to_image"] == faithful["gene_to_image"]  # not an image-to-gene setting
    assert plain["image_to_gene"] != faithful["image_to_gene"]


def test_method_label_names_the_settings():
    from i2r_utils.directions import method_label

    original = {
        "representation": "cnn", "condition_embedding": "nucleus_mean", "kernel": "ntk",
        "depth": 1, "input_bias": True, "input_scaling": "none", "alphas": [1.0],
        "direction": "image_to_gene", "direction_used": "image_to_gene", "metric": "euclidean",
        "gene_norm": "l2",
    }  # fmt: skip
    label = method_label(original)
    assert label.startswith("image2reg translation: cnn nucleus-mean embeddings, NTK depth 1, ")
    assert "bias-augmented inputs, raw inputs, ridge 1, image to gene" in label
    assert label.endswith("euclidean ranking of L2-normalised gene embeddings")
    for key, value in (("depth", 2), ("input_bias", False), ("alphas", [0.1, 1.0]),
                       ("gene_norm", "none"), ("condition_embedding", "profiles")):  # fmt: skip
        assert method_label({**original, key: value}).startswith("i2r translation: ")
    i2r = method_label({**original, "depth": 2, "input_bias": False, "input_scaling": "global",
                        "alphas": [0.001, 10.0], "direction": "auto",
                        "direction_used": "two_way"})  # fmt: skip
    assert "NTK depth 2, kernel constant 1, centred and scaled inputs" in i2r
    assert "ridge by inner LOO over 0.001-10, auto (two way)" in i2r
