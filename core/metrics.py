"""Classification metrics from confusion counts (vectorised; the bootstrap reuses them)."""
from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """k x k counts, rows = truth, columns = prediction."""
    return np.bincount(np.asarray(y_true, np.int64) * k + np.asarray(y_pred, np.int64),
                       minlength=k * k).reshape(k, k)


def per_class_prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 per class from a (..., k, k) confusion; 0 where undefined."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    pred = cm.sum(axis=-2).astype(float)
    true = cm.sum(axis=-1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(true > 0, tp / true, 0.0)
        f1 = np.where(pred + true > 0, 2 * tp / (pred + true), 0.0)
    return precision, recall, f1


def macro_f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 over the labels present in truth or predictions (scikit-learn's
    convention); works on a stack of confusions (..., k, k)."""
    _, _, f1 = per_class_prf(cm)
    present = (cm.sum(axis=-1) + cm.sum(axis=-2)) > 0
    return (f1 * present).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> float:
    return float(macro_f1_from_confusion(confusion(y_true, y_pred, k)))
