"""A split's parameters as the options that make it (light: status imports it)."""
from __future__ import annotations

import re

# A split's name is a folder name under models/, eval/ and deploy/.
SPLIT_NAME_MAX = 64
MAX_EPISODE_SHARE = 0.1     # the default of `split --max-episode-share` (core.split)
SPLIT_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{SPLIT_NAME_MAX - 1}}}")
SPLIT_NAME_RULE = f"letters, digits, '-', '_' and '.', starting with a letter or digit (at most {SPLIT_NAME_MAX})"


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
    if params.get("max_episode_share", MAX_EPISODE_SHARE) != MAX_EPISODE_SHARE:
        opts.append(f"--max-episode-share {params['max_episode_share']:g}")
    return " ".join(opts)
