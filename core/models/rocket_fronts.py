"""The ROCKET family's fixed fronts, as torch modules: MiniRocket (Dempster,
Schmidt, Webb, KDD 2021), MultiRocket (Tan et al., 2022) and Hydra (Dempster
et al., 2023). Nothing here is trained: the kernels are fixed, and only the
biases (quantiles of convolution outputs) and channel choices are drawn from
train windows. One implementation runs on CPU or CUDA and exports to ONNX.

Parameters follow the reference implementations (as in aeon 1.6) exactly, so
that loading a reference's fitted parameters gives its features
(tests/core/test_rocket_reference.py): the 84 kernels of length 9 with weights
-1 and 2, dilations spread on a log scale over the window, biases at the
golden-ratio quantiles of one random train window's convolution output per
kernel and dilation, "same" zero padding for every other kernel/dilation
pair and no padding (valid part only) for the rest, and, multivariate, a random
subset of channels summed before each kernel. Pooling is PPV (MiniRocket) or
PPV, LSPV, MPV, MIPV on the series and its first difference (MultiRocket).
Hydra: groups of k random normalised kernels that compete per time step;
soft counts of the winners and hard counts of the losers, on the series and
its difference.

Memory: a forward holds (batch, kernels, biases, steps) comparisons; callers
cut big batches with `rows_per_batch`.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

KERNEL_LENGTH = 9
# The 84 kernels: the 3 positions of 9 that weigh 2 (the other six weigh -1).
KERNEL_INDICES = np.array(list(combinations(range(KERNEL_LENGTH), 3)), dtype=np.int64)
N_KERNELS = len(KERNEL_INDICES)
MIN_STEPS = KERNEL_LENGTH


def fit_dilations(steps: int, n_features: int, max_dilations: int) -> tuple[np.ndarray, np.ndarray]:
    """Dilations and features per dilation (MiniRocket's rule): up to
    `max_dilations` exponentially spaced dilations up to (steps - 1) / 8,
    n_features // 84 features per kernel spread over them."""
    per_kernel = n_features // N_KERNELS
    true_max = min(per_kernel, max_dilations)
    multiplier = per_kernel / true_max
    max_exponent = np.log2((steps - 1) / (KERNEL_LENGTH - 1))
    dilations, counts = np.unique(np.logspace(0, max_exponent, true_max, base=2).astype(np.int32), return_counts=True)
    per_dilation = (counts * multiplier).astype(np.int32)
    remainder = per_kernel - int(per_dilation.sum())
    i = 0
    while remainder > 0:
        per_dilation[i] += 1
        remainder -= 1
        i = (i + 1) % len(per_dilation)
    return dilations.astype(np.int64), per_dilation.astype(np.int64)


def golden_quantiles(n: int) -> np.ndarray:
    """The low-discrepancy quantiles biases are drawn at: frac(i * phi), i = 1..n."""
    return np.array([(i * ((np.sqrt(5) + 1) / 2)) % 1 for i in range(1, n + 1)], dtype=np.float32)


def fit_minirocket_params(sample: np.ndarray, n_features: int, max_dilations: int,
                          rng: np.random.Generator) -> dict:
    """Dilations, channel choices and biases from train windows `sample`
    (n, C, T), float32 and complete (missing steps already imputed)."""
    n, channels, steps = sample.shape
    dilations, per_dilation = fit_dilations(steps, n_features, max_dilations)
    combos = N_KERNELS * len(dilations)
    max_exponent = np.log2(min(channels, 9) + 1)
    counts = (2 ** rng.uniform(0, max_exponent, combos)).astype(np.int64)
    chosen = np.concatenate([rng.choice(channels, c, replace=False) for c in counts])
    examples = rng.integers(0, n, combos)
    total = int(N_KERNELS * per_dilation.sum())
    params = {"dilations": dilations, "features_per_dilation": per_dilation, "channel_counts": counts,
              "channel_indices": chosen.astype(np.int64), "biases": np.zeros(total, np.float32)}
    # Biases: quantiles of one random train window's output per kernel and dilation.
    front = MiniRocketFront(params, channels, steps)
    quantiles = golden_quantiles(total).reshape(-1)
    biases, start = [], 0
    import torch
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(sample, np.float32))
        k = torch.arange(N_KERNELS)
        for j, nf in enumerate(per_dilation):
            order = front.order[j]                  # the front's row r is reference kernel order[r]
            ex = torch.from_numpy(examples[j * N_KERNELS + order])
            inputs = front.kernel_inputs(x[ex], j)                 # (84 examples, 84 kernels or 1, T)
            own = inputs[k, k].unsqueeze(0) if inputs.shape[1] > 1 else inputs.transpose(0, 1)
            c = front.kernel_outputs(own, j)[0].numpy() if inputs.shape[1] > 1 else \
                _own_outputs(front, own, j).numpy()                  # kernel k on its own example
            c = c[np.argsort(order)]
            q = quantiles[start:start + N_KERNELS * nf].reshape(N_KERNELS, nf)
            biases.append(row_quantiles(c, q).reshape(-1))
            start += N_KERNELS * nf
    params["biases"] = np.concatenate(biases)
    return params


def _own_outputs(front, series, j: int):
    """One channel: kernel k of dilation j on series k ((1, 84, T) -> (84, T)),
    with the arithmetic of kernel_outputs' one-channel path."""
    import torch
    taps = _taps(series[0], front.dilations[j], series.shape[-1])        # 9 x (84, T)
    alpha = taps[0]
    for t in taps[1:]:
        alpha = alpha + t
    flat = torch.stack(taps, dim=1)                                     # (84, 9, T)
    k = torch.arange(N_KERNELS)
    index = getattr(front, f"tap_index_{j}")
    g = flat[k, index[0]] + flat[k, index[1]]
    g = g + flat[k, index[2]]
    return 3.0 * g - alpha


def row_quantiles(c: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row r's quantiles q[r] of c[r] (np.quantile's linear rule), all rows at once."""
    ordered = np.sort(c.astype(np.float64), axis=1)
    pos = q.astype(np.float64) * (c.shape[1] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, c.shape[1] - 1)
    t = pos - lo
    a = np.take_along_axis(ordered, lo, axis=1)
    b = np.take_along_axis(ordered, hi, axis=1)
    # numpy's lerp: from the nearer end, so that t = 1 gives b exactly.
    out = np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)
    return out.astype(np.float32)


def _slots(counts: np.ndarray, indices: np.ndarray, channels: int, offset: int, rows: int, slots: int) -> np.ndarray:
    """(slots, rows) channel indices: slot s of row r is the s-th channel row r
    sums, or `channels` (an all-zero channel) past its count."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen = [indices[starts[offset + r]:starts[offset + r + 1]] for r in range(rows)]
    out = np.full((slots, rows), channels, np.int64)
    for r, c in enumerate(chosen):
        out[:len(c), r] = c
    return out


def _torch():
    import torch
    from torch import nn
    return torch, nn


def _summed(x, slots):
    """Per row, the sum of its channels, added in slot order (x: (B, C + 1, T))."""
    out = x.index_select(1, slots[0])
    for s in range(1, slots.shape[0]):
        out = out + x.index_select(1, slots[s])
    return out


def _taps(x, dilation: int, steps: int) -> list:
    """The 9 dilated taps of a 'same' zero-padded kernel: x shifted by (i - 4) * d."""
    torch, _ = _torch()
    pad = (KERNEL_LENGTH - 1) * dilation // 2
    xp = torch.nn.functional.pad(x, (pad, pad))
    return [xp[..., i * dilation:i * dilation + steps] for i in range(KERNEL_LENGTH)]


def _prefix_max(z):
    """Inclusive running maximum along the last axis in log2(L) shifted
    maxima (static shapes: exports to ONNX, unlike cummax)."""
    torch, _ = _torch()
    steps = z.shape[-1]
    s = 1
    while s < steps:
        z = torch.maximum(z, torch.nn.functional.pad(z[..., :steps - s], (s, 0)))
        s *= 2
    return z


def MiniRocketFront(params: dict, channels: int, steps: int, pooling: str = "ppv"):
    """A module: (B, C, T) -> (B, features). `pooling`: 'ppv' (MiniRocket) or
    'multi' (MultiRocket's PPV, LSPV, MPV, MIPV blocks, in that order)."""
    torch, nn = _torch()

    class Front(nn.Module):
        def __init__(self):
            super().__init__()
            self.pooling = pooling
            self.dilations = [int(d) for d in params["dilations"]]
            self.per_dilation = [int(f) for f in params["features_per_dilation"]]
            self.steps = steps
            self.channels = channels
            # PPV by sorting each output once and binary-searching the biases
            # (far fewer comparisons); the ONNX export compares every step
            # with every bias instead (ONNX has no binary search). Both count
            # exactly the steps above each bias, so they give the same bits.
            self.compare_all = False
            # Every other kernel (alternating with the dilation) is pooled over
            # its whole padded output, the rest over its valid part only. Each
            # dilation holds its kernels in that order (the first half whole),
            # so a forward slices instead of gathering; `reference_order` maps
            # the features back to the reference's order (kernel by kernel).
            biases = np.asarray(params["biases"], np.float32)
            start, self.order = 0, []
            for j, (d, nf) in enumerate(zip(self.dilations, self.per_dilation)):
                full = np.array([(j + k) % 2 == 0 for k in range(N_KERNELS)])
                order = np.concatenate([np.nonzero(full)[0], np.nonzero(~full)[0]])
                self.order.append(order)
                slots = _slots(np.asarray(params["channel_counts"]), np.asarray(params["channel_indices"]),
                               channels, j * N_KERNELS, N_KERNELS, min(channels, 9))
                self.register_buffer(f"slots_{j}", torch.from_numpy(np.ascontiguousarray(slots[:, order])))
                # Kernel k: the sum over its 9 taps of weight x tap (2 at its
                # three positions, -1 elsewhere: exact products), added in tap
                # order, so torch and ONNX Runtime give the same bits and no
                # comparison with a bias flips between them.
                w = -np.ones((KERNEL_LENGTH, N_KERNELS, 1), np.float32)
                for r, k in enumerate(order):
                    w[KERNEL_INDICES[k], r, 0] = 2.0
                self.register_buffer(f"tap_weights_{j}", torch.from_numpy(w))
                # One channel: every kernel reads the same series, so the 9
                # taps are taken once and each kernel is 3 (x[a] + x[b] + x[c])
                # - (sum of the 9 taps), as MiniRocket's reference computes it.
                self.register_buffer(f"tap_index_{j}",
                                     torch.from_numpy(np.ascontiguousarray(KERNEL_INDICES[order].T)))
                b = biases[start:start + N_KERNELS * nf].reshape(N_KERNELS, nf)[order]
                start += N_KERNELS * nf
                self.register_buffer(f"bias_{j}", torch.from_numpy(np.ascontiguousarray(b)))

        def reference_order(self) -> np.ndarray:
            """For each of this front's features, its index in the reference layout."""
            out, start = [], 0
            blocks = 1 if self.pooling == "ppv" else 4
            total = N_KERNELS * sum(self.per_dilation)
            for op in range(blocks):
                start = 0
                for order, nf in zip(self.order, self.per_dilation):
                    idx = start + order[:, None] * nf + np.arange(nf)[None, :]
                    out.append(op * total + idx.reshape(-1))
                    start += N_KERNELS * nf
            return np.concatenate(out)

        def working_elements(self) -> int:
            """Floats one window holds at once per step (the batch size's measure):
            the taps and kernel outputs, and the comparisons of the four poolings."""
            per_step = KERNEL_LENGTH * (self.channels + 1) + 4 * N_KERNELS
            if self.pooling != "ppv" or self.compare_all:
                per_step += 4 * N_KERNELS * max(self.per_dilation)
            return per_step

        def kernel_inputs(self, x, j: int):
            """(B, C, T) -> (B, 84, T): for each kernel of dilation j, the sum of
            its channels ((B, 1, T) as it is with one channel)."""
            if self.channels == 1:
                return x
            zero = torch.zeros_like(x[:, :1])
            return _summed(torch.cat([x, zero], dim=1), getattr(self, f"slots_{j}"))

        def kernel_outputs(self, xs, j: int):
            """(B, 84, T) kernel inputs -> (B, 84, T) outputs of the dilated kernels."""
            taps = _taps(xs, self.dilations[j], xs.shape[-1])
            if xs.shape[1] == 1:
                index = getattr(self, f"tap_index_{j}")
                alpha = taps[0]
                for t in taps[1:]:
                    alpha = alpha + t
                flat = torch.cat(taps, dim=1)                                   # (B, 9, T)
                g = flat.index_select(1, index[0]) + flat.index_select(1, index[1])
                g = g + flat.index_select(1, index[2])
                return 3.0 * g - alpha
            w = getattr(self, f"tap_weights_{j}")
            out = taps[0] * w[0]
            for i in range(1, KERNEL_LENGTH):
                out = out + taps[i] * w[i]
            return out

        def convolve(self, x, j: int):
            return self.kernel_outputs(self.kernel_inputs(x, j), j)

        def forward(self, x):
            blocks = [[] for _ in range(1 if self.pooling == "ppv" else 4)]
            fast = self.pooling == "ppv" and not self.compare_all
            half = N_KERNELS // 2
            for j, d in enumerate(self.dilations):
                c = self.convolve(x, j)
                pad = (KERNEL_LENGTH - 1) * d // 2
                bias = getattr(self, f"bias_{j}")
                parts = [_pool(c[:, :half], bias[:half], self.pooling, fast),
                         _pool(c[:, half:, pad:self.steps - pad], bias[half:], self.pooling, fast)]
                for op in range(len(blocks)):
                    blocks[op].append(parts[0][op].flatten(1))
                    blocks[op].append(parts[1][op].flatten(1))
            return torch.cat([torch.cat(b, dim=1) for b in blocks], dim=1)

    return Front()


def _pool(c, bias, pooling: str, sorted_counts: bool = False):
    """Pooled features of convolution outputs c (B, K, L) at biases (K, nf):
    [ppv] or [ppv, lspv, mpv, mipv], each (B, K, nf). MPV is the mean of
    C - bias over the positive ones, as MultiRocket's paper defines it (its
    code sums C + bias: a shift by 2 x bias that standardisation removes, but
    for windows with no positive value); MIPV is -1 without a positive value,
    and LSPV counts as the reference code does."""
    torch, _ = _torch()
    steps = c.shape[-1]
    if sorted_counts:
        # numpy's sort is several times faster than torch's on short rows.
        ordered = (torch.from_numpy(np.sort(c.numpy(), axis=-1)) if c.device.type == "cpu"
                   else torch.sort(c, dim=-1).values)
        at = torch.searchsorted(ordered, bias.unsqueeze(0).expand(c.shape[0], -1, -1).contiguous(), right=True)
        return [(steps - at).to(c.dtype) / steps]
    c4 = c.unsqueeze(2)                       # (B, K, 1, L)
    b4 = bias.unsqueeze(0).unsqueeze(-1)      # (1, K, nf, 1)
    gt = (c4 > b4).to(c.dtype)
    count = gt.sum(-1)
    ppv = count / steps
    if pooling == "ppv":
        return [ppv]
    pos = torch.arange(steps, dtype=c.dtype, device=c.device)
    has = count > 0
    safe = torch.clamp(count, min=1.0)
    mpv = torch.where(has, (gt * (c4 - b4)).sum(-1) / safe, torch.zeros_like(count))
    mipv = torch.where(has, (gt * pos).sum(-1) / safe, -torch.ones_like(count))
    # Longest stretch: the largest distance between consecutive windows below
    # the bias (the first counted from 0), or from the last one to the end.
    below = c4 < b4
    z = torch.where(below, pos, torch.zeros_like(pos))
    incl = _prefix_max(z)
    excl = torch.nn.functional.pad(incl[..., :steps - 1], (1, 0))
    stretch = torch.where(below, pos - excl, torch.zeros_like(excl)).amax(-1)
    lspv = torch.maximum(stretch, (steps - 1) - incl[..., -1])
    return [ppv, lspv, mpv, mipv]


def MultiRocketFront(params: dict, params_diff: dict, channels: int, steps: int):
    """MultiRocket: the four poolings on the series, then on its first difference."""
    torch, nn = _torch()

    class Front(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = MiniRocketFront(params, channels, steps, "multi")
            self.diff = MiniRocketFront(params_diff, channels, steps - 1, "multi")

        def working_elements(self) -> int:
            return max(self.base.working_elements(), self.diff.working_elements())

        def forward(self, x):
            return torch.cat([self.base(x), self.diff(x[:, :, 1:] - x[:, :, :-1])], dim=1)

    return Front()


def fit_multirocket_params(sample: np.ndarray, n_kernels: int, max_dilations: int,
                           rng: np.random.Generator) -> tuple[dict, dict]:
    base = fit_minirocket_params(sample, n_kernels, max_dilations, rng)
    diff = fit_minirocket_params(np.diff(sample, axis=2), n_kernels, max_dilations, rng)
    return base, diff


def hydra_dilations(steps: int) -> np.ndarray:
    return 2 ** np.arange(int(np.log2((steps - 1) / (KERNEL_LENGTH - 1))) + 1)


def fit_hydra_params(channels: int, steps: int, k: int, g: int, max_channels: int,
                     rng: np.random.Generator) -> dict:
    """Hydra's random kernels (normal, then zero mean and unit absolute sum)
    and, multivariate, each group's random channels (drawn with replacement,
    summed: the reference's rule; univariate, the one channel)."""
    dilations = hydra_dilations(steps)
    divisor = min(2, g)
    h = g // divisor
    w = rng.standard_normal((len(dilations), divisor, k * h, 1, KERNEL_LENGTH)).astype(np.float32)
    w -= w.mean(-1, keepdims=True)
    w /= np.abs(w).sum(-1, keepdims=True)
    idx = rng.integers(0, channels, (len(dilations), divisor, h, hydra_channels(channels, max_channels)))
    return {"dilations": dilations.astype(np.int64), "k": k, "g": g, "weights": w, "channels": idx}


def hydra_channels(channels: int, max_channels: int) -> int:
    return 1 if channels == 1 else int(np.clip(channels // 2, 2, max_channels))


def HydraFront(params: dict, channels: int, steps: int):
    """A module: (B, C, T) -> (B, features): per dilation and per input (series,
    difference), the soft counts of each group's winning kernel and the hard
    counts of its losing one. The dilated kernels are written as 9 multiplies
    and adds in a fixed order (the same bits in torch and ONNX Runtime: a
    convolution's summation order would decide ties between kernels)."""
    torch, nn = _torch()

    class Front(nn.Module):
        def __init__(self):
            super().__init__()
            self.dilations = [int(d) for d in params["dilations"]]
            self.k = int(params["k"])
            w = np.asarray(params["weights"], np.float32)                     # (nd, div, k*h, 1, 9)
            self.divisor, self.h = w.shape[1], w.shape[2] // self.k
            # (nd, div, 9, 1, h, k, 1): tap i's weight for every group and kernel.
            taps = w.reshape(w.shape[0], w.shape[1], self.h, self.k, KERNEL_LENGTH).transpose(0, 1, 4, 2, 3)
            self.register_buffer("weights", torch.from_numpy(np.ascontiguousarray(taps[:, :, :, None, :, :, None])))
            # (nd, div, slots, h): the channels each group sums, slot by slot.
            self.register_buffer("channels", torch.from_numpy(
                np.ascontiguousarray(np.asarray(params["channels"], np.int64).transpose(0, 1, 3, 2))))
            self.register_buffer("slots", torch.arange(self.k).view(1, 1, self.k, 1))

        def working_elements(self) -> int:
            return KERNEL_LENGTH * (self.channels.shape[2] + 1) + 4 * self.h * self.k

        def forward(self, x):
            n = x.shape[0]
            inputs = [x, x[:, :, 1:] - x[:, :, :-1]][:self.divisor]
            out = []
            for j, d in enumerate(self.dilations):
                for i, xi in enumerate(inputs):
                    taps = _taps(_summed(xi, self.channels[j, i]), d, xi.shape[-1])
                    w = self.weights[j, i]
                    z = w[0] * taps[0].unsqueeze(2)
                    for t in range(1, KERNEL_LENGTH):
                        z = z + w[t] * taps[t].unsqueeze(2)                    # (B, h, k, T)
                    top, top_at = z.max(2)
                    _, low_at = z.min(2)
                    wins = (top_at.unsqueeze(2) == self.slots).to(z.dtype)
                    loses = (low_at.unsqueeze(2) == self.slots).to(z.dtype)
                    out.append((wins * top.unsqueeze(2)).sum(-1))
                    out.append(loses.sum(-1))
            return torch.cat(out, dim=1).reshape(n, -1)

    return Front()
