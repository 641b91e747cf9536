import numpy as np
import pandas as pd
import pytest

from i2r_utils.io import InputError
from i2r_utils.translation import (
    KernelRidge,
    Translator,
    fit_translator,
    fold_space,
    kernel_matrix,
    loo_predictions,
    loo_ranks,
    ntk_relu,
    permutation_ranks,
    rank_genes,
    ranks_of,
    summarize_results,
    topk_accuracy,
    topk_auc,
    training_set,
    translate_held_out,
    true_rank,
    uniform_topk,
)


def _empirical_ntk(x, width, rng):
    """Gradient Gram matrix of a random 2-hidden-layer ReLU net (NTK parameterisation)."""
    w1 = rng.standard_normal((width, x.shape[1]))
    w2 = rng.standard_normal((width, width))
    v = rng.standard_normal(width)
    c = np.sqrt(2 / width)
    h1 = x @ w1.T
    a1 = c * np.maximum(h1, 0)
    h2 = a1 @ w2.T
    a2 = c * np.maximum(h2, 0)
    d2 = c * v[None] * (h2 > 0)  # df/dh2
    d1 = c * (d2 @ w2) * (h1 > 0)  # df/dh1
    return a2 @ a2.T + (d2 @ d2.T) * (a1 @ a1.T) + (d1 @ d1.T) * (x @ x.T)


def test_ntk_closed_form_matches_wide_random_network():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    emp = np.mean([_empirical_ntk(x, 2048, rng) for _ in range(4)], axis=0)
    assert np.abs(emp - ntk_relu(x, depth=2)).max() < 0.25
    assert np.abs(emp - ntk_relu(x, depth=3)).max() > 0.5  # the test can tell depths apart
    k = ntk_relu(x * 2, depth=3)
    assert np.allclose(k, k.T) and np.all(np.linalg.eigvalsh(k) > -1e-9)
    assert np.allclose(np.diag(k), 4 * 4)  # (depth + 1) |x|^2
    with pytest.raises(ValueError):
        ntk_relu(x, depth=0)


def test_kernel_ridge_matches_sklearn():
    from sklearn.kernel_ridge import KernelRidge as SkKRR

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    ours = KernelRidge(alpha=0.5, kernel="rbf", gamma=0.3).fit(x, y).predict(x[:4])
    ref = SkKRR(alpha=0.5, kernel="rbf", gamma=0.3).fit(x, y).predict(x[:4])
    assert np.allclose(ours, ref)
    assert np.allclose(KernelRidge(alpha=1e-8).fit(x, y).predict(x), y, atol=1e-4)
    with pytest.raises(ValueError, match="unknown kernel"):
        KernelRidge(kernel="poly").fit(x, y)


@pytest.mark.parametrize("kernel", ["ntk", "linear", "rbf"])
def test_closed_form_loo_equals_refitting_n_times(kernel):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(15, 4)) / 2, rng.normal(size=(15, 3))
    alphas = [0.01, 0.5, 3.0]
    k = kernel_matrix(x, x, kernel, 2, 0.25)
    fast = loo_predictions(k, y, alphas)
    for a, alpha in enumerate(alphas):
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            m = KernelRidge(alpha, kernel, 2, 0.25).fit(x[keep], y[keep])
            assert np.allclose(fast[a, i], m.predict(x[i : i + 1])[0], atol=1e-8)
    assert np.allclose(loo_predictions(k, y, 0.5), fast[1])


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


def test_inner_cv_never_touches_the_held_out_row():
    emb, prof, conds = _screen()
    held = conds[0]
    a = training_set(prof, emb, held, conds)
    prof2 = prof.copy()
    prof2.loc[prof2.Metadata_Condition == held, "cnn_0"] = 1e6  # corrupt the held-out row
    b = training_set(prof2, emb, held, conds)
    assert held not in a["conditions"] and "EMPTY" not in a["conditions"]
    assert np.array_equal(a["x_train"], b["x_train"]) and not np.array_equal(
        a["x_test"], b["x_test"]
    )
    ta = Translator("ntk", 2, (0.01, 0.1, 1.0)).fit(a["x_train"], a["y_train"])
    tb = Translator("ntk", 2, (0.01, 0.1, 1.0)).fit(b["x_train"], b["y_train"])
    assert ta.alpha_ == tb.alpha_ and ta.cv_mse_ == tb.cv_mse_
    assert np.array_equal(ta.coef_, tb.coef_) and np.array_equal(ta.mu_, tb.mu_)
    # the chosen alpha minimises the LOO error obtained by refitting without each row
    errs = {}
    for alpha in (0.01, 0.1, 1.0):
        e = 0.0
        for i in range(len(ta.x_)):
            keep = np.arange(len(ta.x_)) != i
            m = KernelRidge(alpha, "ntk", 2, bias=1.0).fit(ta.x_[keep], ta.y_[keep])
            e += ((m.predict(ta.x_[i : i + 1]) - ta.y_[i]) ** 2).mean()
        errs[alpha] = e / len(ta.x_)
    assert ta.alpha_ == min(errs, key=errs.get)
    assert np.allclose([ta.cv_mse_[k] for k in errs], list(errs.values()))


def test_alpha_fallback_and_single_value():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2, 5)), rng.normal(size=(2, 3))
    assert Translator(alphas=(0.001, 0.1)).fit(x, y).alpha_ == 1.0  # too few rows for LOO
    assert Translator(alphas=(0.3,)).fit(x, y).alpha_ == 0.3
    tr = Translator(alphas=(0.001, 0.1)).fit(x, y)
    assert tr.permuted_predictions(x[:1], 3).shape == (3, 3)
    x = rng.normal(size=(6, 4)) * [1, 10, 100, 0]
    for scaling in ("global", "feature"):
        tr = Translator(scaling=scaling).fit(x, rng.normal(size=(6, 2)))
        assert np.isclose((tr.x_**2).sum(1).mean(), 0.75 if scaling == "feature" else 1.0)
    with pytest.raises(ValueError, match="scaling"):
        Translator(scaling="none").fit(x, y[:1].repeat(6, 0))


def test_learnable_mapping_beats_baselines():
    emb, prof, conds = _screen()
    ranks, perm, mean_emb = [], [], []
    for held in conds[:8]:
        ts = training_set(prof, emb, held, prof["Metadata_Condition"])
        xt, yt, xe, names = ts["x_train"], ts["y_train"], ts["x_test"], ts["conditions"]
        assert len(names) == 29
        _, res = translate_held_out(xt, yt, xe, emb, held, "linear", alphas=(0.001, 0.01),
                                    n_permutations=50, compare=False)  # fmt: skip
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


def test_ranking_helpers_and_metrics():
    emb = pd.DataFrame([[1, 0], [0, 1], [0.6, 0.8]], index=["A", "B", "C"])
    r = rank_genes(np.array([0.9, 0.1]), emb)
    assert list(r.gene) == ["A", "C", "B"] and true_rank(r, "c") == 2
    assert list(rank_genes(np.array([1.0, 1.0]), emb, "cosine").gene)[0] == "C"
    preds = np.array([[0.9, 0.1], [1.0, 1.0], [0.0, 2.0]])
    assert list(ranks_of(preds, emb, ["C", "C", "b"])) == [2, 1, 1]
    with pytest.raises(KeyError):
        true_rank(r, "Z")
    with pytest.raises(ValueError, match="metric"):
        rank_genes(np.array([1.0, 0.0]), emb, "manhattan")
    assert np.allclose(topk_accuracy([1, 2, 5], [1, 2, 5]), [1 / 3, 2 / 3, 1])
    n = 200
    assert topk_auc(np.arange(1, n + 1)) == pytest.approx(30 / n)  # uniform ranks
    assert topk_auc([1, 3, 9]) == 1.0 and topk_auc([60, 70]) == 0.0
    assert np.allclose(uniform_topk([10, 300], n), [0.05, 1.0])


def test_unit_norm_candidates_rank_the_same_by_euclidean_and_cosine():
    rng = np.random.default_rng(3)
    emb = pd.DataFrame(rng.normal(size=(30, 5)), index=[f"G{i}" for i in range(30)])
    emb = emb.div(np.linalg.norm(emb, axis=1), axis=0)
    p = rng.normal(size=5) * 0.3
    assert list(rank_genes(p, emb).gene) == list(rank_genes(p, emb, "cosine").gene)


def test_fold_space_loo_ranks_and_summary():
    emb, prof, conds = _screen(n_cond=12)
    prof = pd.concat([prof.assign(Metadata_Fold=f) for f in (0, 1)], ignore_index=True)
    folds = pd.DataFrame({"Metadata_Condition": conds, "Metadata_Fold": [0, 1] * 6})
    space, fold = fold_space(prof, folds, conds[1])
    assert fold == 1 and set(space.Metadata_Fold) == {1}
    with pytest.raises(InputError, match="no fold"):
        fold_space(prof, folds, "NOPE")
    loo = loo_ranks(space, emb, conds, "linear", alpha=0.001)
    assert list(loo.condition) == conds and loo.loo_rank.mean() < 3
    tr, used = fit_translator(space, emb, conds, "linear", alphas=(0.001,))
    assert used == conds and true_rank(tr.rank(space.iloc[[2]][tr_cols(space)], emb), conds[2]) <= 2
    results = []
    for c in conds[:6]:
        ts = training_set(space, emb, c, conds)
        _, res = translate_held_out(ts["x_train"], ts["y_train"], ts["x_test"], emb, c,
                                    n_permutations=20)  # fmt: skip
        results.append(res)
    metrics, curves = summarize_results(results)
    assert list(metrics.method[:4]) == [
        "method (NTK KRR)", "permutation baseline", "mean-embedding predictor",
        "uniform random (k/N)",
    ]  # fmt: skip
    perm = metrics.iloc[1]
    assert perm.auc_k10_50_lo <= perm.auc_k10_50 <= perm.auc_k10_50_hi
    assert metrics.iloc[3].auc_k10_50 == pytest.approx(
        np.mean(np.minimum(np.arange(10, 51) / 60, 1))
    )
    assert all(len(v if not isinstance(v, tuple) else v[0]) == 50 for v in curves.values())


def tr_cols(df):
    return [c for c in df.columns if not c.startswith("Metadata_")]


@pytest.mark.parametrize("direction", ["gene_to_image", "two_way"])
def test_translation_model_directions_and_their_baselines(direction):
    from i2r_utils.translation import TranslationModel
    from i2r_utils.twoway import fuse_ranks

    emb, prof, conds = _screen()
    ranks, perm_means = [], []
    for held in conds[:8]:
        ts = training_set(prof, emb, held, prof["Metadata_Condition"])
        genes = [c.upper() for c in ts["conditions"]]
        ranking, res = translate_held_out(
            ts["x_train"], ts["y_train"], ts["x_test"], emb, held, "linear",
            alphas=(0.001, 0.01), n_permutations=30, direction=direction, train_genes=genes,
        )  # fmt: skip
        assert res["direction"] == direction and res["comparison"][direction] == res["true_rank"]
        assert {"gene_to_image", "two_way", "linear/euclidean"} <= set(res["comparison"])
        assert res["reverse_width"] > 0 and res["reverse_noise"] > 0
        assert ranking["rank"].tolist() == list(range(1, len(emb) + 1))
        assert ranking["distance"].is_monotonic_increasing
        ranks.append(res["true_rank"])
        perm_means.append(res["permutation_mean_rank"])
    assert np.mean(ranks) < 4 and np.mean(perm_means) > 10
    # the two-way ranking is the fusion of the two single-direction rankings
    ts = training_set(prof, emb, conds[0], prof["Metadata_Condition"])
    genes = [c.upper() for c in ts["conditions"]]
    model = TranslationModel.fit(ts["x_train"], ts["y_train"], genes, emb, "two_way", "linear")
    two = model.rank(ts["x_test"], emb).set_index("gene").loc[emb.index]
    one = {
        d: TranslationModel(d, model.forward, model.reverse).rank(ts["x_test"], emb)
        for d in ("image_to_gene", "gene_to_image")
    }
    d_fwd = one["image_to_gene"].set_index("gene").loc[emb.index, "distance"].to_numpy()
    d_rev = one["gene_to_image"].set_index("gene").loc[emb.index, "distance"].to_numpy()
    mean_rank, fused = fuse_ranks(d_fwd, d_rev)
    np.testing.assert_array_equal(two["rank"].to_numpy(), fused)
    np.testing.assert_allclose(two["distance"].to_numpy(), mean_rank)
    np.testing.assert_allclose(two["distance_gene_to_image"].to_numpy(), d_rev)
    # the baseline of a two-way ranking: one valid rank per permutation
    r = model.permuted_ranks(ts["x_test"], emb, conds[0], 5, seed=1)
    assert r.shape == (5,) and (r >= 1).all() and (r <= len(emb)).all()
    with pytest.raises(ValueError, match="train_genes"):
        translate_held_out(ts["x_train"], ts["y_train"], ts["x_test"], emb, conds[0],
                           direction="two_way")  # fmt: skip
    with pytest.raises(InputError, match="unknown direction"):
        TranslationModel.fit(ts["x_train"], ts["y_train"], genes, emb, "sideways")
    with pytest.raises(ValueError, match="candidate table"):
        model.rank(ts["x_test"], emb.iloc[::-1])


def test_fit_translator_two_way_ranks_a_new_profile():
    emb, prof, conds = _screen()
    model, used = fit_translator(prof, emb, conds[1:], "linear", alphas=(0.001,),
                                 direction="two_way")  # fmt: skip
    assert conds[0] not in used and model.reverse is not None
    x = prof.set_index("Metadata_Condition").loc[[conds[0]]].to_numpy(float)
    assert true_rank(model.rank(x, emb), conds[0]) <= 3


def test_auto_direction_is_chosen_by_leave_one_out_on_training_conditions():
    from i2r_utils.translation import DIRECTIONS, TranslationModel, inner_direction_scores

    emb, prof, conds = _screen()
    ts = training_set(prof, emb, conds[0], prof["Metadata_Condition"])
    x, y, genes = ts["x_train"][:12], ts["y_train"][:12], [c.upper() for c in ts["conditions"][:12]]
    scores = inner_direction_scores(x, y, genes, emb, "linear", alphas=(0.001, 0.01))
    assert set(scores) == set(DIRECTIONS)
    # the image-to-gene score by hand: refit without each row, rank its gene, mean log rank
    logs = []
    for j in range(len(x)):
        keep = np.arange(len(x)) != j
        t = Translator("linear", 2, (0.001, 0.01)).fit(x[keep], y[keep])
        logs.append(np.log(true_rank(rank_genes(t.predict(x[[j]])[0], emb), genes[j])))
    assert scores["image_to_gene"] == pytest.approx(np.mean(logs))
    model = TranslationModel.fit(x, y, genes, emb, "auto", "linear", alphas=(0.001, 0.01))
    assert model.inner_scores == pytest.approx(scores)
    assert scores[model.direction] == min(scores.values()) and model.reverse is not None
    # the result records what was asked and what was used
    _, res = translate_held_out(x, y, ts["x_test"], emb, conds[0], "linear", alphas=(0.001, 0.01),
                                direction="auto", train_genes=genes)  # fmt: skip
    assert res["direction_requested"] == "auto" and res["direction"] == model.direction
    assert res["true_rank"] == res["comparison"].get(model.direction, res["true_rank"])
    # too few training conditions to choose: two-way
    few = TranslationModel.fit(x[:3], y[:3], genes[:3], emb, "auto", "linear")
    assert few.direction == "two_way" and few.inner_scores == {}
