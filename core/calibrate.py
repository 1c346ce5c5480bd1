"""Temperature scaling: one scalar per checkpoint, fitted on validation when
it is trained, recorded in its header and its bundle, and applied wherever
its probabilities are read (eval, export's bundle, live inference), so a
live probability still equals eval's. numpy only to apply it (the Pi's base
install); fitting needs scipy (the lab extra). docs/methods.md, "Trusting a
probability"."""
from __future__ import annotations

import numpy as np

EPS = 1e-12
METHOD = "temperature scaling (Guo et al., ICML 2017): softmax(log p / T), T minimising the validation NLL"


def scale(proba: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T), as float32 like every model's probabilities. For a
    softmax model log p is its logits up to a constant per window, which the
    softmax ignores, so this is Guo et al.'s scaling of the logits. T = 1
    returns the probabilities unchanged."""
    if temperature == 1.0:
        return np.asarray(proba, np.float32)
    z = np.log(np.clip(np.asarray(proba, np.float64), EPS, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def nll(proba: np.ndarray, truth: np.ndarray) -> float:
    """Mean negative log-likelihood of the truth (natural log, floored at 1e-12)."""
    if len(truth) == 0:
        return 0.0
    return float(-np.log(np.clip(np.asarray(proba, np.float64)[np.arange(len(truth)), truth], EPS, 1.0)).mean())


def fit_temperature(proba: np.ndarray, truth: np.ndarray) -> float:
    """The T > 0 minimising the NLL of `truth` under scale(proba, T): one
    bounded scalar search over log T in [-4, 4]."""
    from scipy.optimize import minimize_scalar
    if len(truth) == 0:
        return 1.0
    logp = np.log(np.clip(np.asarray(proba, np.float64), EPS, 1.0))
    rows = np.arange(len(truth))

    def loss(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(z).sum(axis=1)) - z[rows, truth]).mean())

    res = minimize_scalar(loss, bounds=(-LOG_T_BOUND, LOG_T_BOUND), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(res.x))


LOG_T_BOUND = 4.0


def fit_checked(proba: np.ndarray, truth: np.ndarray) -> tuple[float, str | None]:
    """(T, None), or (1, why not) when validation cannot say: with no window
    wrong, the likelihood only grows as T falls to 0 (every right answer made
    certain), so the search stops at its bound and a model that errs on new
    hosts would be made certain of its errors (seen: MiniRocket, T = 0.02,
    test NLL 0.17 -> 1.07)."""
    if len(truth) == 0:
        return 1.0, "no validation windows"
    if (np.asarray(proba).argmax(axis=1) == truth).all():
        return 1.0, "every validation window is right: nothing to calibrate against"
    t = fit_temperature(proba, truth)
    if abs(np.log(t)) >= LOG_T_BOUND - 1e-3:
        return 1.0, f"the fit ran to the edge of its search (T = {t:.3g})"
    return t, None


def temperature_of(header: dict) -> float:
    """The temperature a checkpoint or bundle header records (1: none, a
    checkpoint trained before calibration was)."""
    return float((header.get("calibration") or {}).get("temperature", 1.0))
