"""Models on summary features: gbt (XGBoost), knn, knn_semi (label spreading)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from core.metrics import macro_f1
from core.models.base import BaseModel, class_weights, save_npz


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


def _RoundProgress(progress, total: int):
    """An XGBoost callback that moves the bar with the boosting rounds."""
    import xgboost as xgb

    class RoundProgress(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log) -> bool:
            if epoch % 5 == 0:
                loss = evals_log.get("validation_0", {}).get("mlogloss")
                progress(epoch + 1, total, **({"val_loss": f"{loss[-1]:.3f}"} if loss else {}))
            return False
    return RoundProgress()


class GBTModel(BaseModel):
    """XGBoost (hist), class-weighted, early stopping on validation mlogloss."""
    name = "gbt"
    input_kind = "summary"
    default_config = {"n_estimators": 400, "max_depth": 6, "learning_rate": 0.1, "subsample": 0.9,
                      "colsample_bytree": 0.8, "early_stopping_rounds": 25, "n_jobs": 2}
    progress_unit = "round"

    @classmethod
    def progress_total(cls, config: dict) -> int:
        return int(config["n_estimators"])

    def _fit(self, train, val, progress) -> dict:
        import xgboost as xgb
        cfg = self.config
        k = len(self.classes)
        xt, xv = self.pre.transform_summary(train.X), self.pre.transform_summary(val.X)
        clf = xgb.XGBClassifier(
            objective="multi:softprob", num_class=k, tree_method="hist", eval_metric="mlogloss",
            n_estimators=cfg["n_estimators"], max_depth=cfg["max_depth"], learning_rate=cfg["learning_rate"],
            subsample=cfg["subsample"], colsample_bytree=cfg["colsample_bytree"],
            early_stopping_rounds=cfg["early_stopping_rounds"], random_state=self.seed, n_jobs=cfg["n_jobs"],
            device="cuda" if self.device == "cuda" else "cpu",
            callbacks=[_RoundProgress(progress, cfg["n_estimators"])] if progress else None)
        clf.fit(xt, train.y, sample_weight=class_weights(train.y, k)[train.y], eval_set=[(xv, val.y)],
                verbose=False)
        self.booster = clf.get_booster()
        self.best_iteration = int(clf.best_iteration)
        f1 = macro_f1(val.y, self._predict_proba(xv).argmax(1), k)
        rounds = int(self.booster.num_boosted_rounds())
        if progress:
            progress(rounds, cfg["n_estimators"], f1=f"{f1:.2f}")
        return {"best_epoch": self.best_iteration + 1, "val_macro_f1": f1, "rounds_run": rounds,
                "val_mlogloss": float(clf.best_score), "early_stopping": "validation mlogloss"}

    def _predict_proba(self, x) -> np.ndarray:
        import xgboost as xgb
        return self.booster.predict(xgb.DMatrix(x), iteration_range=(0, self.best_iteration + 1))

    def _save_weights(self, directory: Path) -> str:
        self.booster.save_model(str(directory / "weights.json"))
        self.training["best_iteration"] = self.best_iteration
        return "weights.json"

    def _load_weights(self, path: Path) -> None:
        import xgboost as xgb
        self.booster = xgb.Booster()
        self.booster.load_model(str(path))
        self.best_iteration = int(self.training["best_iteration"])


class KNNModel(BaseModel):
    """k nearest neighbours (distance-weighted) over standardised summary features."""
    name = "knn"
    input_kind = "summary"
    default_config = {"k": 15, "max_train": 20000}

    def _fit(self, train, val, progress) -> dict:
        rng = np.random.default_rng(self.seed)
        idx = _stratified_cap(train.y, self.config["max_train"], rng)
        self.X_fit = self.pre.transform_summary(train.X[idx])
        self.dist_fit = np.eye(len(self.classes), dtype=np.float32)[train.y[idx]]
        f1 = macro_f1(val.y, self._predict_proba(self.pre.transform_summary(val.X)).argmax(1), len(self.classes))
        if progress:
            progress(1, 1, val_f1=f"{f1:.3f}")
        return {"best_epoch": 1, "val_macro_f1": f1, "train_windows_kept": int(len(idx))}

    def _index(self):
        from sklearn.neighbors import NearestNeighbors
        if getattr(self, "_nn", None) is None:
            self._nn = NearestNeighbors(n_neighbors=min(self.config["k"], len(self.X_fit))).fit(self.X_fit)
        return self._nn

    def _predict_proba(self, x) -> np.ndarray:
        dist, idx = self._index().kneighbors(x)
        w = 1.0 / np.maximum(dist, 1e-6)
        p = (self.dist_fit[idx] * w[:, :, None]).sum(axis=1)
        return p / p.sum(axis=1, keepdims=True)

    def _save_weights(self, directory: Path) -> str:
        save_npz(directory / "weights.npz", {"X_fit": self.X_fit, "dist_fit": self.dist_fit})
        return "weights.npz"

    def _load_weights(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            self.X_fit, self.dist_fit = z["X_fit"], z["dist_fit"]
        self._nn = None


def symmetric_knn_kernel(k: int):
    """A kNN affinity made symmetric (i~j if either is among the other's k
    nearest). scikit-learn's own 'knn' kernel is directed: a window that no
    other window counts among its neighbours (duplicates crowd it out) has
    degree 0 in the normalised Laplacian, and its label distribution is NaN."""
    def kernel(X, Y):
        from sklearn.neighbors import kneighbors_graph
        graph = kneighbors_graph(X, n_neighbors=max(1, min(k, len(X) - 1)), mode="connectivity", include_self=False)
        return ((graph + graph.T) > 0).astype(np.float64).tocsr()
    return kernel


class KNNSemiModel(KNNModel):
    """Label spreading over labelled train windows plus unlabelled windows (their
    labels are never read); predicts by kNN over the spread label distributions."""
    name = "knn_semi"
    needs_unlabeled = True
    default_config = {"k": 15, "max_labeled": 8000, "max_unlabeled": 8000, "alpha": 0.2, "unlabeled_part": "test"}

    unlabeled = None          # SummaryData set by the trainer; its y is ignored
    unlabeled_source = ""

    def _fit(self, train, val, progress) -> dict:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.semi_supervised import LabelSpreading
        rng = np.random.default_rng(self.seed)
        lab = _stratified_cap(train.y, self.config["max_labeled"], rng)
        xl = self.pre.transform_summary(train.X[lab])
        n_unl = 0
        xs, ys = [xl], [train.y[lab]]
        if self.unlabeled is not None and len(self.unlabeled):
            sel = np.sort(rng.choice(len(self.unlabeled), size=min(self.config["max_unlabeled"],
                                                                    len(self.unlabeled)), replace=False))
            xs.append(self.pre.transform_summary(self.unlabeled.X[sel]))
            ys.append(np.full(len(sel), -1))
            n_unl = len(sel)
        X, y = np.concatenate(xs), np.concatenate(ys)
        ls = LabelSpreading(kernel=symmetric_knn_kernel(self.config["k"]), alpha=self.config["alpha"], max_iter=50)
        with warnings.catch_warnings():
            # Spreading stops at max_iter on large graphs; the distributions are still usable.
            warnings.simplefilter("ignore", ConvergenceWarning)
            ls.fit(X, y)
        dist = np.zeros((len(X), len(self.classes)), np.float32)
        dist[:, ls.classes_] = ls.label_distributions_
        # An unlabelled window that no label reached (a component of the graph
        # without a labelled window) has no distribution: it cannot vote.
        reached = np.isfinite(dist).all(axis=1) & (dist.sum(axis=1) > 0)
        self.X_fit, self.dist_fit = X[reached].astype(np.float32), dist[reached]
        self._nn = None
        f1 = macro_f1(val.y, self._predict_proba(self.pre.transform_summary(val.X)).argmax(1), len(self.classes))
        if progress:
            progress(1, 1, val_f1=f"{f1:.3f}")
        return {"best_epoch": 1, "val_macro_f1": f1, "labeled_windows": int(len(lab)),
                "unlabeled_pool": {"source": self.unlabeled_source or "none", "part": self.config["unlabeled_part"],
                                   "windows_used": int(n_unl), "windows_unreached": int((~reached).sum()),
                                   "labels_used": False}}
