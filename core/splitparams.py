"""A split's parameters as the options that make it (light: status imports it)."""
from __future__ import annotations


def describe_params(params: dict) -> str:
    """A split's parameters as the options that make it."""
    opts = [f"--recipe {params['recipe']}"]
    if params.get("train_hosts"):
        opts.append(f"--train-hosts {','.join(params['train_hosts'])}")
    opts.append(f"--val-frac {params['val_frac']:g}")
    if params["recipe"] != "host":
        opts.append(f"--test-frac {params['test_frac']:g}")
    opts.append(f"--seed {params['seed']}")
    return " ".join(opts)
