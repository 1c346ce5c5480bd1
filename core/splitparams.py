"""A split's parameters as the options that make it (light: status imports it)."""
from __future__ import annotations

import re

# A split's name is a folder name under models/, eval/ and deploy/.
SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SPLIT_NAME_RULE = "letters, digits, '-', '_' and '.', starting with a letter or digit (at most 64)"


def describe_params(params: dict, name: str | None = None) -> str:
    """A split's parameters as the options that make it (with --name when
    its name is not its recipe's)."""
    opts = [f"--recipe {params['recipe']}"] + ([f"--name {name}"] if name and name != params["recipe"] else [])
    if params.get("train_hosts"):
        opts.append(f"--train-hosts {','.join(params['train_hosts'])}")
    opts.append(f"--val-frac {params['val_frac']:g}")
    if params["recipe"] != "host":
        opts.append(f"--test-frac {params['test_frac']:g}")
    opts.append(f"--seed {params['seed']}")
    return " ".join(opts)
