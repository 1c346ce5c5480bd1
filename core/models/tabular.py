"""Models on summary features: gbt (XGBoost), knn, knn_semi (label spreading)."""
from __future__ import annotations

import contextlib
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from core.metrics import macro_f1
from core.models.base import STREAM_BATCH, BaseModel, class_weights, save_npz
from core.models.settings import K_GRID, GBTSettings, KNNSemiSettings, KNNSettings


def _stratified_cap(y: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most `cap` indices, keeping every class's share (and at least one of each)."""
    if len(y) <= cap:
        return np.arange(len(y))
    keep = []
    for c in np.unique(y):
        idx = np.nonzero(y == c)[0]
        k = max(1, int(round(cap * len(idx) / len(y))))
        keep.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(keep))


# Validation windows that choose k: a uniform sample beyond this, so that the
# choice costs a bounded number of neighbour searches at any corpus size.
K_CHOICE_VAL = 20000


def _choice_sample(model: BaseModel, val, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = val.sample(K_CHOICE_VAL, rng, cols=model.pre.keep)
    return model.pre.transform_kept(x), y


def _RoundProgress(progress, total: int, deadline: float | None = None, stopped: dict | None = None):
    """An XGBoost callback that moves the bar with the boosting rounds (every
    round: the bar's ETA follows the rounds' cost) and, with a deadline
    (time.monotonic()), ends the boosting after the round that reaches it."""
    import time

    import xgboost as xgb

    class RoundProgress(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            if progress:
                loss = evals_log.get("validation_0", {}).get("mlogloss")
                # Fields always: they replace what binning said.
                progress(epoch + 1, total, **({"val_loss": f"{loss[-1]:.3f}"} if loss else {"rate": ""}))
            if deadline is not None and time.monotonic() >= deadline:
                if stopped is not None:
                    stopped["round"] = epoch + 1
                return True
            return False
    return RoundProgress()


def _matrix(model: "GBTModel", data, weights: np.ndarray | None, ref, pages: Path | None, progress=None,
            what: str = "train"):
    """A binned XGBoost matrix built from standardised batches: in memory (one
    byte per value) or, when `pages` is given, paged to disk under it.
    `progress`: the bar says how far binning is (XGBoost reads the batches
    twice: once to sketch the bins, once to fill them), before round 1."""
    import xgboost as xgb
    batch_rows = model.batch_rows
    seen = {"windows": 0, "passes": 0}

    class Batches(xgb.DataIter):
        def __init__(self):
            self._it = None
            kw = {"cache_prefix": str(pages / "part")} if pages is not None else {}
            super().__init__(release_data=True, **kw)

        def reset(self) -> None:
            self._it = None

        def next(self, input_data) -> bool:
            if self._it is None:
                self._it = model.prepared_batches(data, batch_rows)
                seen["passes"] += 1
                seen["windows"] = 0
            batch = next(self._it, None)
            if batch is None:
                return False
            x, y = batch
            seen["windows"] += len(y)
            if progress:
                progress(0, model.cfg.n_estimators,
                         binning=f"{what} pass {seen['passes']}: {seen['windows']:,}/{len(data):,} windows")
            input_data(data=x, label=y, **({"weight": weights[y]} if weights is not None else {}))
            return True

    kw = {"max_bin": int(model.cfg.max_bin), "nthread": int(model.cfg.n_jobs)}
    if ref is not None:
        kw["ref"] = ref
    if pages is not None:
        return xgb.ExtMemQuantileDMatrix(Batches(), **kw)
    return xgb.QuantileDMatrix(Batches(), **kw)


class GBTModel(BaseModel):
    """XGBoost (hist), class-weighted, early stopping on validation mlogloss.

    Trained from a batch iterator: the summary features are streamed, binned
    (one byte per value) and never held as a float matrix; above the memory
    budget the bins are paged to disk (XGBoost external memory)."""
    name = "gbt"
    input_kind = "summary"
    settings = GBTSettings
    option_keys = {"lr": "learning_rate", "weight_decay": "reg_lambda", "budget": "budget_s"}
    progress_unit = "round"
    batch_rows = STREAM_BATCH
    scratch: Path | None = None     # where external-memory pages go (the trainer sets the features' folder)

    @classmethod
    def progress_total(cls, cfg) -> int:
        return cfg.n_estimators

    def _fit(self, train, val, progress) -> dict:
        import xgboost as xgb
        cfg = self.cfg
        k = len(self.classes)
        bins_mb = len(train) * len(self.pre.keep) / 1e6
        external = bins_mb > cfg.memory_budget_mb
        # The CPU-only build has no CUDA; a lab with a GPU installs the `xgboost` wheel instead.
        device = "cuda" if self.device == "cuda" and xgb.build_info().get("USE_CUDA") else "cpu"
        params = {"objective": "multi:softprob", "num_class": k, "tree_method": "hist", "eval_metric": "mlogloss",
                  "max_depth": cfg.max_depth, "eta": cfg.learning_rate, "subsample": cfg.subsample,
                  "colsample_bytree": cfg.colsample_bytree, "lambda": cfg.reg_lambda,
                  "max_bin": cfg.max_bin, "seed": self.seed, "nthread": cfg.n_jobs, "device": device}
        # The budget counts from here: binning the matrices is part of the fit.
        deadline = time.monotonic() + cfg.budget_s if cfg.budget_s > 0 else None
        if external:
            from core.paths import remove_dead_temps, temp_prefix
            remove_dead_temps(Path(self.scratch or tempfile.gettempdir()), "gbt-pages")
        with (tempfile.TemporaryDirectory(prefix=temp_prefix("gbt-pages"), dir=self.scratch) if external
              else contextlib.nullcontext()) as tmp:
            pages = Path(tmp) if external else None
            dtrain = _matrix(self, train, class_weights(train.y, k), None, pages, progress, "train")
            stopped: dict = {}
            callbacks = ([_RoundProgress(progress, cfg.n_estimators, deadline, stopped)]
                         if progress or deadline is not None else None)
            history: list[dict] = []
            if val is None:
                # Rounds chosen by cross-validation (a validation part too small to stop on).
                self.booster = xgb.train(params, dtrain, num_boost_round=self.fixed["rounds"], verbose_eval=False,
                                         callbacks=callbacks)
                best_score = f1 = float("nan")
                self.best_iteration = self.fixed["rounds"] - 1
                del dtrain
            else:
                dval = _matrix(self, val, None, dtrain, pages, progress, "val")
                curve: dict = {}
                self.booster = xgb.train(params, dtrain, num_boost_round=cfg.n_estimators,
                                         evals=[(dval, "validation_0")], evals_result=curve,
                                         early_stopping_rounds=cfg.early_stopping_rounds,
                                         verbose_eval=False, callbacks=callbacks)
                # The validation loss of every round: eval draws it (training.png) as it draws a neural model's.
                history = [{"round": i + 1, "val_loss": float(v)} for i, v in
                           enumerate(curve.get("validation_0", {}).get("mlogloss", []))]
                best_score = float(self.booster.best_score)
                self.best_iteration = int(self.booster.best_iteration)
                # The binned validation matrix is already built: no second read of val.
                proba = self.booster.predict(dval, iteration_range=(0, self.best_iteration + 1))
                f1 = macro_f1(val.y, self._checked(proba).argmax(1), k)
                # The pages must be released before their folder goes.
                del dtrain, dval
        rounds = int(self.booster.num_boosted_rounds())
        if progress:
            progress(rounds, cfg.n_estimators, f1=f"{f1:.2f}")
        return {"best_epoch": self.best_iteration + 1, "val_macro_f1": f1, "rounds_run": rounds,
                "val_mlogloss": best_score, "device": device,
                "early_stopping": "validation mlogloss" if val is not None else "none (rounds by cross-validation)",
                **({"budget": {"budget_s": cfg.budget_s, "stopped_by_budget": "round" in stopped,
                               **({"stopped_at_round": stopped["round"]} if "round" in stopped else {})}}
                   if deadline is not None else {}),
                "data": {"binned_train_mb": round(bins_mb, 1), "external_memory": external,
                         "batch_windows": self.batch_rows}, **({"history": history} if history else {})}

    def _cv_summary(self, info: dict) -> dict:
        return {"rounds": int(info["best_epoch"]), "score": float(info["val_macro_f1"])}

    def _cv_fix(self, summaries: list[dict]) -> dict:
        return {"rounds": max(1, int(round(float(np.median([s["rounds"] for s in summaries])))))}

    def _predict_proba(self, x) -> np.ndarray:
        import xgboost as xgb
        return self.booster.predict(xgb.DMatrix(x), iteration_range=(0, self.best_iteration + 1))

    def write_export(self, directory: Path) -> dict:
        from core.lab import GRAPH
        from core.models.onnx_graphs import booster_graph
        # The rounds the checkpoint predicts with.
        booster_graph(self.booster[: self.best_iteration + 1], len(self.pre.keep), Path(directory) / GRAPH)
        return {}

    def split_thresholds(self) -> list[tuple[int, np.float32]]:
        import json
        splits = []

        def walk(node):
            if "split" in node:
                splits.append((int(str(node["split"]).lstrip("f")), np.float32(node["split_condition"])))
                for child in node.get("children", []):
                    walk(child)
        for tree in self.booster[: self.best_iteration + 1].get_dump(dump_format="json"):
            walk(json.loads(tree))
        return splits

    def _save_weights(self, directory: Path) -> str:
        # Written by Python, not by XGBoost: a full disk is then an OSError that
        # names the file, not a C++ "FileStream.Write incomplete" and its backtrace.
        (directory / "weights.json").write_bytes(bytes(self.booster.save_raw("json")))
        self.training["best_iteration"] = self.best_iteration
        return "weights.json"

    def _load_weights(self, path: Path) -> None:
        import xgboost as xgb
        self.booster = xgb.Booster()
        self.booster.load_model(str(path))
        self.best_iteration = int(self.training["best_iteration"])


def _vote(dist_fit: np.ndarray, dist: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Distance-weighted vote of the neighbours' label distributions."""
    w = 1.0 / np.maximum(dist, 1e-6)
    p = (dist_fit[idx] * w[:, :, None]).sum(axis=1)
    return p / p.sum(axis=1, keepdims=True)


class KNNModel(BaseModel):
    """k nearest neighbours (distance-weighted) over standardised summary
    features, against a bounded reference set; k chosen on validation."""
    name = "knn"
    exportable_as = "numpy-knn"
    input_kind = "summary"
    settings = KNNSettings

    def _reference(self, train, cap: int, rng) -> tuple[np.ndarray, dict]:
        idx = _stratified_cap(train.y, cap, rng)
        return idx, {"windows": int(len(idx)), "of": int(len(train)), "cap": int(cap),
                     "sample": "all train windows" if len(idx) == len(train) else "stratified by phase"}

    def _fit(self, train, val, progress) -> dict:
        rng = np.random.default_rng(self.seed)
        idx, ref = self._reference(train, self.cfg.max_train, rng)
        self.X_fit = self.pre.transform_kept(train.gather(idx, cols=self.pre.keep))
        self.dist_fit = np.eye(len(self.classes), dtype=np.float32)[train.y[idx]]
        info = self._choose_k(val, progress)
        return {**info, "reference": ref, "train_windows_kept": ref["windows"]}

    def _choose_k(self, val, progress) -> dict:
        """The configured k, or the grid's best on validation macro-F1 (ties to
        the larger k: a smoother vote). One neighbour search serves the grid.
        Without val, the k cross-validation chose."""
        n_ref = len(self.X_fit)
        if val is None:
            self.k, self._nn = min(self.fixed["k"], n_ref), None
            return {"best_epoch": 1, "k": self.k, "k_choice": "cross-validation"}
        x_val, y_val = _choice_sample(self, val, np.random.default_rng(self.seed + 1))
        grid = [self.cfg.k] if self.cfg.k else [k for k in K_GRID if k <= n_ref] or [n_ref]
        self.k, self._nn = min(max(grid), n_ref), None
        dist, idx = self._index().kneighbors(x_val)
        scores = {}
        for k in grid:
            kk = min(k, n_ref)
            scores[k] = macro_f1(y_val, _vote(self.dist_fit, dist[:, :kk], idx[:, :kk]).argmax(1), len(self.classes))
        best = max(grid, key=lambda k: (scores[k], k))
        self.k, self._nn = min(best, n_ref), None
        if progress:
            progress(1, 1, k=str(self.k), val_f1=f"{scores[best]:.3f}")
        return {"best_epoch": 1, "val_macro_f1": scores[best], "val_windows_scored": int(len(y_val)), "k": self.k,
                "k_choice": "set" if self.cfg.k else f"validation macro-F1 over {grid}",
                "k_scores": {str(k): round(v, 4) for k, v in scores.items()}}

    def _cv_summary(self, info: dict) -> dict:
        return {"k_scores": info["k_scores"], "score": float(info["val_macro_f1"])}

    def _cv_fix(self, summaries: list[dict]) -> dict:
        # The k with the best mean held-out macro-F1 over the folds (ties to the larger k).
        ks = sorted({int(k) for s in summaries for k in s["k_scores"]})
        mean = {k: float(np.mean([s["k_scores"].get(str(k), 0.0) for s in summaries])) for k in ks}
        return {"k": max(ks, key=lambda k: (mean[k], k))}

    def _index(self):
        from sklearn.neighbors import NearestNeighbors
        if getattr(self, "_nn", None) is None:
            self._nn = NearestNeighbors(n_neighbors=min(self.k, len(self.X_fit))).fit(self.X_fit)
        return self._nn

    def _predict_proba(self, x) -> np.ndarray:
        dist, idx = self._index().kneighbors(x)
        return _vote(self.dist_fit, dist, idx)

    def write_export(self, directory: Path) -> dict:
        from core.lab import REFERENCE
        save_npz(Path(directory) / REFERENCE, {"reference": self.X_fit.astype(np.float32),
                                               "distributions": self.dist_fit.astype(np.float32)})
        return {"k": int(self.k)}

    def _save_weights(self, directory: Path) -> str:
        save_npz(directory / "weights.npz", {"X_fit": self.X_fit, "dist_fit": self.dist_fit})
        self.training["k"] = self.k
        return "weights.npz"

    def _load_weights(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            self.X_fit, self.dist_fit = z["X_fit"], z["dist_fit"]
        # Checkpoints from before k was chosen on validation recorded it in the config only.
        self.k = int(self.training.get("k") or self.cfg.k or 15)
        self._nn = None


def symmetric_knn_kernel(k: int, neighbours: np.ndarray | None = None):
    """A kNN affinity made symmetric (i~j if either is among the other's k
    nearest). scikit-learn's own 'knn' kernel is directed: a window that no
    other window counts among its neighbours (duplicates crowd it out) has
    degree 0 in the normalised Laplacian, and its label distribution is NaN.

    `neighbours`: each window's nearest others, nearest first, searched once
    for the largest k of a grid; each k of the grid takes its first k."""
    def kernel(X, Y):
        from scipy.sparse import csr_matrix
        idx = neighbours if neighbours is not None else _neighbours(X, k)
        kk = max(1, min(k, idx.shape[1]))
        n = len(X)
        graph = csr_matrix((np.ones(n * kk), (np.repeat(np.arange(n), kk), idx[:, :kk].ravel())), shape=(n, n))
        return ((graph + graph.T) > 0).astype(np.float64).tocsr()
    return kernel


def _neighbours(X: np.ndarray, k: int) -> np.ndarray:
    """Indices of each row's k nearest other rows, nearest first (itself excluded)."""
    from sklearn.neighbors import NearestNeighbors
    return NearestNeighbors(n_neighbors=max(1, min(k, len(X) - 1))).fit(X).kneighbors(return_distance=False)


class KNNSemiModel(KNNModel):
    """Label spreading over labelled train windows plus unlabelled windows (their
    labels are never read); predicts by kNN over the spread label distributions.
    k (the graph's and the vote's) is chosen on validation like knn's."""
    name = "knn_semi"
    needs_unlabeled = True
    settings = KNNSemiSettings

    unlabeled = None          # SummaryData set by the trainer; its y is ignored
    unlabeled_source = ""

    def _spread(self, X: np.ndarray, y: np.ndarray, k: int, neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.semi_supervised import LabelSpreading
        ls = LabelSpreading(kernel=symmetric_knn_kernel(k, neighbours), alpha=self.cfg.alpha, max_iter=50)
        with warnings.catch_warnings():
            # Spreading stops at max_iter on large graphs; the distributions are still usable.
            warnings.simplefilter("ignore", ConvergenceWarning)
            ls.fit(X, y)
        dist = np.zeros((len(X), len(self.classes)), np.float32)
        dist[:, ls.classes_] = ls.label_distributions_
        # An unlabelled window that no label reached (a component of the graph
        # without a labelled window) has no distribution: it cannot vote.
        reached = np.isfinite(dist).all(axis=1) & (dist.sum(axis=1) > 0)
        return dist, reached

    def _fit(self, train, val, progress) -> dict:
        rng = np.random.default_rng(self.seed)
        lab, ref = self._reference(train, self.cfg.max_labeled, rng)
        xs, ys = [self.pre.transform_kept(train.gather(lab, cols=self.pre.keep))], [train.y[lab]]
        n_unl = 0
        if self.unlabeled is not None and len(self.unlabeled) and self.cfg.max_unlabeled:
            x_unl, _ = self.unlabeled.sample(self.cfg.max_unlabeled, rng, cols=self.pre.keep)
            xs.append(self.pre.transform_kept(x_unl))
            ys.append(np.full(len(x_unl), -1))
            n_unl = len(x_unl)
        X, y = np.concatenate(xs), np.concatenate(ys)
        if val is not None:
            x_val, y_val = _choice_sample(self, val, rng)
            grid = ([self.cfg.k] if self.cfg.k else [k for k in K_GRID if 3 <= k < len(X)]
                    or [max(1, len(X) - 1)])
        else:
            x_val, y_val, grid = None, None, [self.fixed["k"]]
        scores, fits = {}, {}
        neighbours = _neighbours(X, max(grid))
        for i, k in enumerate(grid):
            dist, reached = self._spread(X, y, k, neighbours)
            self.X_fit, self.dist_fit, self.k, self._nn = X[reached], dist[reached], k, None
            self.k = min(k, len(self.X_fit))
            scores[k] = (macro_f1(y_val, self._predict_proba(x_val).argmax(1), len(self.classes))
                         if x_val is not None else float("nan"))
            fits[k] = (self.X_fit, self.dist_fit, int((~reached).sum()))
            if progress:
                progress(i + 1, len(grid), k=str(k), val_f1=f"{scores[k]:.3f}")
        best = max(grid, key=lambda k: (scores[k], k))
        self.X_fit, self.dist_fit, unreached = fits[best]
        self.k, self._nn = min(best, len(self.X_fit)), None
        if progress:
            progress(len(grid), len(grid), k=str(self.k), val_f1=f"{scores[best]:.3f}")
        choice = ("cross-validation" if val is None else "set" if self.cfg.k
                  else f"validation macro-F1 over {grid}")
        return {"best_epoch": 1, "val_macro_f1": scores[best], "val_windows_scored": int(len(y_val)) if val is not None else 0,
                "k": self.k, "labeled_windows": int(len(lab)), "k_choice": choice,
                "k_scores": {str(k): round(v, 4) for k, v in scores.items()}, "reference": ref,
                "unlabeled_pool": {"source": self.unlabeled_source or "none", "part": self.cfg.unlabeled_part,
                                   "windows_used": int(n_unl), "windows_unreached": unreached,
                                   "labels_used": False}}
