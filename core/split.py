"""`cis490 split`: honest episode-level splits, deterministic by seed, checked.

Recipes: held-out host, held-out sample, held-out time. Splits are made over
the extracted episodes (those with windows), so every part has windows.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import Cis490Error, ConfigError
from core.extract import EPISODES, load_feature_schema, read_extracted_episodes, split_windows_digest
from core.loading import read_json, read_parquet
from core.lab import Lab
from core.paths import atomic_path, atomic_write_text, ensure_dir
from core.registry import Registry
from core.store import parse_received_at
from core.splitparams import MAX_EPISODE_SHARE, describe_params  # noqa: F401 (re-exported)

RECIPES = ("host", "sample", "time")
PARTS = ("train", "val", "test")
STRATIFY_TOLERANCE = 0.15
# No episode weighs more than MAX_EPISODE_SHARE of the windows a model is
# fitted and chosen on (these parts): the rest of a longer one is left out,
# evenly spaced over it (docs/methods.md, "One episode never dominates").
CAPPED_PARTS = ("train", "val")


class SplitError(Cis490Error):
    """A split cannot be made as asked, or failed one of its checks."""


class SplitInUse(SplitError):
    """Making the split again would replace one that artefacts were made on."""

    def __init__(self, message: str, made_on: int):
        super().__init__(message)
        self.made_on = made_on


def made_on(processed: Path, artifacts: Path, name: str) -> dict[str, int]:
    """What the lab made on split `name`: checkpoints, evaluations, bundles."""
    lab = Lab(processed, artifacts)
    return {"checkpoint(s)": len(lab.checkpoints(name)), "evaluation(s)": len(lab.report_paths(name)),
            "bundle(s)": sum(r.split == name for r in lab.bundles())}


@dataclass(frozen=True)
class SplitConfig:
    recipe: str
    train_hosts: tuple[str, ...] = ()
    val_frac: float = 0.2
    test_frac: float = 0.2
    seed: int = 0
    max_episode_share: float = MAX_EPISODE_SHARE

    def check(self) -> None:
        if not 0 < self.max_episode_share <= 1:
            raise ConfigError(f"--max-episode-share must be in (0, 1], got {self.max_episode_share}")
        if self.recipe not in RECIPES:
            raise ConfigError(f"unknown recipe '{self.recipe}' (choose from {', '.join(RECIPES)})")
        if not 0 < self.val_frac < 1 or not 0 < self.test_frac < 1 or self.val_frac + self.test_frac >= 1:
            raise ConfigError(f"--val-frac and --test-frac must be in (0, 1) with a sum below 1, "
                              f"got {self.val_frac} and {self.test_frac}")
        if self.recipe == "host" and not self.train_hosts:
            raise ConfigError("the host recipe needs --train-hosts (e.g. --train-hosts lab-thinkpad)")
        if self.recipe != "host" and self.train_hosts:
            raise ConfigError(f"--train-hosts is for the host recipe; the {self.recipe} recipe does not use it")


@dataclass
class SplitResult:
    recipe: str
    parquet: Path
    meta_path: Path
    meta: dict = field(default_factory=dict)


def episode_cap(sizes: np.ndarray, share: float) -> int | None:
    """The most windows of one episode a part keeps so that none holds more
    than `share` of the part's windows (an equal share, 1/episodes, where the
    part has fewer than 1/share episodes); None when no episode is over it."""
    sizes = np.asarray(sizes, np.int64)
    if len(sizes) == 0:
        return None
    target = max(share, 1 / len(sizes))

    def biggest_share(cap: int) -> float:        # grows with cap
        return cap / np.minimum(sizes, cap).sum()
    if biggest_share(int(sizes.max())) <= target + 1e-12:
        return None
    lo, hi = int(sizes.min()), int(sizes.max())  # lo: within the target (1/episodes), hi: over it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if biggest_share(mid) <= target + 1e-12 else (lo, mid)
    return lo


def capped_rows(groups: np.ndarray, share: float) -> tuple[np.ndarray, int | None]:
    """Which windows of a part (by their episode codes `groups`) it keeps:
    every window of an episode within episode_cap, and that many of a longer
    one, evenly spaced over it (its phases stay represented). And the cap."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    cap = episode_cap(counts, share)
    if cap is None:
        return np.arange(len(groups)), None
    keep = np.ones(len(groups), bool)
    for e in np.flatnonzero(counts > cap):
        idx = np.flatnonzero(inverse == e)
        keep[idx] = False
        keep[idx[np.round(np.linspace(0, len(idx) - 1, cap)).astype(np.int64)]] = True
    return np.flatnonzero(keep), cap


def episode_shares(df: pl.DataFrame, share: float, top: int = 3) -> dict[str, dict]:
    """Per part, its largest episodes' shares of its windows, and for the parts
    models fit and choose on, the cap that keeps any one within `share`."""
    out = {}
    for p in PARTS:
        sub = df.filter(pl.col("part") == p).sort(["n_windows", "episode_id"], descending=[True, False])
        total = int(sub["n_windows"].sum())
        cap = episode_cap(sub["n_windows"].to_numpy(), share) if p in CAPPED_PARTS else None
        n = sub["n_windows"].to_numpy()
        out[p] = {"largest": [{"episode_id": e, "windows": int(k), "share": k / max(total, 1)}
                              for e, k in sub.head(top).select("episode_id", "n_windows").iter_rows()],
                  "cap": cap, "episodes_capped": int((n > cap).sum()) if cap is not None else 0,
                  "windows_kept": int(np.minimum(n, cap).sum()) if cap is not None else total, "windows": total}
    return out


def _stratified_val(eps: pl.DataFrame, frac: float, rng: np.random.Generator) -> set[str]:
    """Per profile, a seeded `frac` of the episodes (at least one when there are two)."""
    val: set[str] = set()
    for profile in sorted(eps["profile"].unique().to_list()):
        ids = sorted(eps.filter(pl.col("profile") == profile)["episode_id"].to_list())
        k = int(round(frac * len(ids)))
        k = max(k, 1) if len(ids) >= 2 else 0
        val.update(rng.permutation(ids)[:k].tolist())
    return val


def assign_parts(eps: pl.DataFrame, cfg: SplitConfig, registry: Registry) -> pl.DataFrame:
    """episode_id -> part for the recipe; raises SplitError when it cannot be done."""
    rng = np.random.default_rng(cfg.seed)
    part: dict[str, str] = {}
    if cfg.recipe == "host":
        hosts = sorted(eps["host_id"].unique().to_list())
        unknown = [h for h in cfg.train_hosts if h not in hosts]
        if unknown:
            raise SplitError(f"train host '{unknown[0]}' has no extracted episodes (hosts: {', '.join(hosts)})")
        if set(hosts) <= set(cfg.train_hosts):
            raise SplitError("no test host left: every host is a train host")
        pool = eps.filter(pl.col("host_id").is_in(list(cfg.train_hosts)))
        val = _stratified_val(pool, cfg.val_frac, rng)
        for e in eps["episode_id"].to_list():
            part[e] = "test"
        for e in pool["episode_id"].to_list():
            part[e] = "val" if e in val else "train"
    elif cfg.recipe == "sample":
        for profile in sorted(eps["profile"].unique().to_list()):
            sub = eps.filter(pl.col("profile") == profile)
            samples = sorted(sub["sample_name"].unique().to_list())
            if len(samples) < 3:
                raise SplitError(f"profile '{profile}' has {len(samples)} sample(s); the sample recipe needs at "
                                 "least 3 per profile (one each for train, val and test)")
            order = rng.permutation(samples).tolist()
            n_test = max(1, int(round(cfg.test_frac * len(order))))
            n_val = max(1, int(round(cfg.val_frac * len(order))))
            n_test = min(n_test, len(order) - 2)
            n_val = min(n_val, len(order) - n_test - 1)
            where = {s: "test" for s in order[:n_test]}
            where.update({s: "val" for s in order[n_test:n_test + n_val]})
            for e, s in sub.select("episode_id", "sample_name").iter_rows():
                part[e] = where.get(s, "train")
    else:  # time
        ordered = eps.sort(["received_ns", "episode_id"])
        n_test = max(1, int(round(cfg.test_frac * ordered.height)))
        earlier, later = ordered.head(ordered.height - n_test), ordered.tail(n_test)
        val = _stratified_val(earlier, cfg.val_frac / (1 - cfg.test_frac), rng)
        for e in later["episode_id"].to_list():
            part[e] = "test"
        for e in earlier["episode_id"].to_list():
            part[e] = "val" if e in val else "train"
    return eps.with_columns(pl.col("episode_id").replace_strict(part).alias("part"))


def check_split(df: pl.DataFrame, cfg: SplitConfig, registry: Registry, stratified: bool = True) -> list[str]:
    """The split's invariants; each violation raises with what went wrong.
    `stratified`: val's share of each profile checked too (not for an
    extended split, whose new episodes are drawn one by one)."""
    if df["episode_id"].n_unique() != df.height:
        raise SplitError("an episode is in two parts")
    train_profiles = set(df.filter(pl.col("part") == "train")["profile"].to_list())
    missing = sorted(set(df["profile"].to_list()) - train_profiles)
    if missing:
        raise SplitError(f"profile '{missing[0]}' has no episode in train")
    for p in PARTS:
        if df.filter(pl.col("part") == p).height == 0:
            raise SplitError(f"part '{p}' is empty; use more episodes or other fractions")
    if cfg.recipe == "sample":
        per = df.group_by("sample_name").agg(pl.col("part").n_unique().alias("k"))
        if per["k"].max() > 1:
            raise SplitError("a sample is in two parts")
    if cfg.recipe == "host":
        test_hosts = set(df.filter(pl.col("part") == "test")["host_id"].to_list())
        if test_hosts & set(cfg.train_hosts):
            raise SplitError("a train host is also a test host")
    if cfg.recipe == "time":
        last_fit = df.filter(pl.col("part") != "test")["received_ns"].max()
        if last_fit > df.filter(pl.col("part") == "test")["received_ns"].min():
            raise SplitError("a train/val episode was received after a test episode")
    if cfg.recipe in ("host", "time") and stratified:
        fit = df.filter(pl.col("part") != "test")
        for profile in sorted(set(fit["profile"].to_list())):
            sub = fit.filter(pl.col("profile") == profile)
            share = sub.filter(pl.col("part") == "val").height / sub.height
            target = cfg.val_frac if cfg.recipe == "host" else cfg.val_frac / (1 - cfg.test_frac)
            if sub.height >= 5 and abs(share - target) > STRATIFY_TOLERANCE:
                raise SplitError(f"val is not stratified: profile '{profile}' has {share:.0%} of its episodes in "
                                 f"val, not {target:.0%}")
    tested = set(df.filter(pl.col("part") == "test")["profile"].to_list())
    return [p for p in registry.profiles if p in train_profiles and p not in tested]


def membership_hash(df: pl.DataFrame) -> str:
    """sha256 over the sorted episode ids of each part: two splits with the same
    hash hold exactly the same episodes in the same parts."""
    h = hashlib.sha256()
    for p in PARTS:
        ids = sorted(df.filter(pl.col("part") == p)["episode_id"].to_list())
        h.update(f"{p}\n{chr(10).join(ids)}\n\n".encode())
    return h.hexdigest()


def received_ns(eps: pl.DataFrame) -> pl.DataFrame:
    """`received_at` parsed to UTC nanoseconds: the time recipe sorts on the time, not the text."""
    ns = [parse_received_at(v) for v in eps["received_at"].to_list()]
    bad = [e for e, v in zip(eps["episode_id"].to_list(), ns) if v is None]
    if bad:
        raise SplitError(f"episode {bad[0]} has no valid received_at; re-run `cis490 validate` (it rejects such "
                         "episodes) and `cis490 extract`")
    return eps.with_columns(pl.Series("received_ns", ns, dtype=pl.Int64))


REALISED_TOLERANCE = 0.1     # a realised fraction further than this from the asked one is said, with why


def realised_fractions(df: pl.DataFrame, cfg: SplitConfig) -> dict:
    """The fractions of episodes the split's parts really hold, beside the
    ones asked for, and in words why they differ when they do by more than
    REALISED_TOLERANCE (the sample recipe deals whole samples: with three
    samples in a profile, a third of them is val whatever --val-frac says)."""
    n = {p: df.filter(pl.col("part") == p).height for p in PARTS}
    total = max(sum(n.values()), 1)
    if cfg.recipe == "host":
        got = {"val": n["val"] / max(n["train"] + n["val"], 1)}
        asked = {"val": cfg.val_frac}
    else:
        got = {"val": n["val"] / total, "test": n["test"] / total}
        asked = {"val": cfg.val_frac, "test": cfg.test_frac}
    far = {p: (got[p], asked[p]) for p in got if abs(got[p] - asked[p]) > REALISED_TOLERANCE}
    why = {"host": "val is drawn per profile, at least one episode of each profile with two",
           "sample": "whole samples are dealt to each part, at least one per profile to val and to test, so a "
                     "profile with few samples gives each part a large share",
           "time": "val is drawn per profile from the earlier episodes, at least one of each profile with two"}
    note = None
    if far:
        shares = "; ".join(f"{p} holds {g:.0%} of the episodes{' of train + val' if cfg.recipe == 'host' else ''}, "
                           f"not the {a:.0%} asked" for p, (g, a) in far.items())
        note = f"{shares}: {why[cfg.recipe]}"
    return {"fractions": got, "asked": asked, "note": note}


def make_split(processed: Path, cfg: SplitConfig, registry: Registry, name: str | None = None,
               artifacts: Path | None = None, force: bool = False) -> SplitResult:
    """Make the split and save it under `name` (default: the recipe's name),
    so a lab keeps several side by side: making one never replaces another.
    Replacing a split of that name with other episodes, when checkpoints,
    evaluations or bundles were made on it (in `artifacts`), makes them stale:
    SplitInUse says how many, unless `force`."""
    cfg.check()
    name = name or cfg.recipe
    check_split_name(name)
    schema = load_feature_schema(processed)
    extracted = read_extracted_episodes(processed)
    eps = (extracted.filter((pl.col("status") == "ok") & (pl.col("n_windows") > 0))
           .select("episode_id", "host_id", "profile", "sample_name", "received_at", "n_windows"))
    if eps.height == 0:
        raise SplitError(f"{processed / EPISODES}: no extracted episode has windows")
    unknown = sorted(set(eps["profile"].to_list()) - set(registry.profiles))
    if unknown:
        raise SplitError(f"profile '{unknown[0]}' of the extracted episodes is not in the channel registry "
                         f"{registry.path}: pass --channels with the registry the lab was validated with")
    df = assign_parts(received_ns(eps), cfg, registry).sort("episode_id")
    untested = check_split(df, cfg, registry)
    if artifacts is not None and not force:
        _refuse_replacing_in_use(processed, artifacts, name, membership_hash(df))
    meta = _split_meta(processed, df, cfg, name, extracted, schema, untested)
    return _write_split(processed, name, df, meta)


def _split_meta(processed: Path, df: pl.DataFrame, cfg: SplitConfig, name: str, extracted: pl.DataFrame,
                schema: dict, untested: list[str]) -> dict:
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for profile, part, n_ep, n_win in (df.group_by("profile", "part")
                                        .agg(pl.len(), pl.col("n_windows").sum()).iter_rows()):
        counts.setdefault(profile, {}).setdefault(part, {})["episodes"] = n_ep
        counts[profile][part]["windows"] = int(n_win)
    hosts = {p: sorted(df.filter(pl.col("part") == p)["host_id"].unique().to_list()) for p in PARTS}
    meta = {"recipe": cfg.recipe, "name": name, "params": asdict(cfg),
            "membership_sha256": membership_hash(df),
            # Its own episodes' windows by content (core.extract.split_windows_digest): runs extracted
            # since leave this split, and what was trained on it, fresh.
            "features_sha256": split_windows_digest(extracted, df["episode_id"], schema),
            "episodes_sha256": schema["episodes_sha256"], "registry_hash": schema["registry_hash"],
            "counts": dict(sorted(counts.items())), "hosts": hosts,
            "untested_profiles": untested,
            "totals": {p: {"episodes": df.filter(pl.col("part") == p).height,
                           "windows": int(df.filter(pl.col("part") == p)["n_windows"].sum())} for p in PARTS},
            "episode_shares": episode_shares(df, cfg.max_episode_share),
            "realised": realised_fractions(df, cfg)}
    lab = Lab(processed, Path())
    # Runs nobody labelled are never split, trained or scored on: said, not silently dropped.
    meta["unlabelled_left_out"] = (pl.scan_parquet(lab.index).filter(pl.col("status") == "unlabelled")
                                   .select(pl.len()).collect().item() if lab.index.exists() else 0)
    return meta


def _write_split(processed: Path, name: str, df: pl.DataFrame, meta: dict) -> SplitResult:
    lab = Lab(processed, Path())
    ensure_dir(lab.splits)
    pq_path, meta_path = lab.split_parquet(name), lab.split_meta(name)
    columns = ["episode_id", "part"] + (["version"] if "version" in df.columns else [])
    with atomic_path(pq_path, ".parquet") as tmp:
        df.select(columns).write_parquet(tmp)
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    return SplitResult(name, pq_path, meta_path, meta)


def _draw(seed: int, episode_id: str) -> float:
    """A uniform number in [0, 1) of the seed and the episode alone: where a
    new episode goes never depends on which others landed with it."""
    return int.from_bytes(hashlib.sha256(f"{seed}\0{episode_id}".encode()).digest()[:8], "big") / 2 ** 64


def extend_parts(old: pl.DataFrame, new: pl.DataFrame, cfg: SplitConfig) -> pl.DataFrame:
    """The part of each new episode, by the split's own recipe; the old ones
    keep theirs. host: a train host's new run goes to val with the split's
    val fraction, any other host's to test (a host never seen is held out).
    sample: a known sample's run goes where its sample is, a new sample's to
    test (an unseen sample is what the recipe tests). time: a run received
    after the last train/val one goes to test, an earlier one (a late upload)
    to val with the recipe's share of train + val."""
    part = []
    if cfg.recipe == "host":
        for e, h in new.select("episode_id", "host_id").iter_rows():
            part.append(("val" if _draw(cfg.seed, e) < cfg.val_frac else "train") if h in cfg.train_hosts
                        else "test")
    elif cfg.recipe == "sample":
        where = dict(old.select("sample_name", "part").unique().iter_rows())
        part = [where.get(s, "test") for s in new["sample_name"].to_list()]
    else:
        cutoff = old.filter(pl.col("part") != "test")["received_ns"].max()
        share = cfg.val_frac / (1 - cfg.test_frac)
        for e, r in new.select("episode_id", "received_ns").iter_rows():
            part.append("test" if r > cutoff else "val" if _draw(cfg.seed, e) < share else "train")
    return new.with_columns(pl.Series("part", part, dtype=pl.Utf8))


def extend_split(processed: Path, name: str, registry: Registry) -> SplitResult:
    """Split `name` with the extracted episodes it lacks added by its own
    recipe (extend_parts), as its next version: every episode it held keeps
    its part, so a model trained on an earlier version never saw any episode
    this one adds, and stays usable on it (check_split_identity). The split's
    metadata keeps each earlier version's membership and windows digest; its
    parquet, the version each episode came in with."""
    check_split_name(name)
    schema = load_feature_schema(processed)
    old_frame, meta = load_split(processed, name, schema)    # refuses one whose own episodes changed since
    params = {**meta["params"], "train_hosts": tuple(meta["params"].get("train_hosts") or ())}
    cfg = SplitConfig(**params)
    extracted = read_extracted_episodes(processed)
    eps = received_ns(extracted.filter((pl.col("status") == "ok") & (pl.col("n_windows") > 0))
                      .select("episode_id", "host_id", "profile", "sample_name", "received_at", "n_windows"))
    version = int(meta.get("version", 1))
    stored = pl.read_parquet(Lab(processed, Path()).split_parquet(name))     # checked by load_split just now
    old_frame = old_frame.with_columns(stored["version"] if "version" in stored.columns
                                       else pl.lit(1, dtype=pl.Int64).alias("version"))
    old = eps.join(old_frame, on="episode_id", how="inner")
    new = eps.filter(~pl.col("episode_id").is_in(old_frame["episode_id"].implode()))
    if new.height == 0:
        return SplitResult(name, Lab(processed, Path()).split_parquet(name), Lab(processed, Path()).split_meta(name),
                           {**meta, "added": {p: 0 for p in PARTS}})
    added = extend_parts(old, new, cfg).with_columns(pl.lit(version + 1, dtype=pl.Int64).alias("version"))
    df = pl.concat([old, added.select(old.columns)]).sort("episode_id")
    untested = check_split(df, cfg, registry, stratified=False)
    was = {k: meta[k] for k in ("membership_sha256", "features_sha256", "totals")}
    out = _split_meta(processed, df, cfg, name, extracted, schema, untested)
    out.update(version=version + 1, history=[*meta.get("history", []), {"version": version, **was}],
               added={p: added.filter(pl.col("part") == p).height for p in PARTS})
    return _write_split(processed, name, df, out)


def earlier_versions(meta: dict) -> dict[str, dict]:
    """The earlier versions of a split (by membership digest) that it extends."""
    return {h["membership_sha256"]: h for h in meta.get("history", []) if isinstance(h, dict)
            and "membership_sha256" in h}


def _refuse_replacing_in_use(processed: Path, artifacts: Path, name: str, membership: str) -> None:
    lab = Lab(processed, artifacts)
    try:
        old = json.loads(lab.split_meta(name).read_text())
    except (OSError, ValueError):
        return                                   # no split of that name (or none readable): nothing to replace
    if not isinstance(old, dict) or old.get("membership_sha256") == membership:
        return                                   # the same episodes in the same parts: nothing goes stale
    counts = {k: n for k, n in made_on(processed, artifacts, name).items() if n}
    if counts:
        what = ", ".join(f"{n} {k}" for k, n in counts.items())
        raise SplitInUse(f"split {name} holds other episodes than these; {what} were made on it and would go "
                         f"stale: pass --force to replace it, or --name NEW to keep both", sum(counts.values()))


SPLIT_META_KEYS = ("recipe", "params", "membership_sha256", "features_sha256", "untested_profiles")


def check_split_name(name: str) -> None:
    from core.splitparams import SPLIT_NAME, SPLIT_NAME_RULE
    if not SPLIT_NAME.fullmatch(name or ""):
        raise ConfigError(f"split name '{name}': {SPLIT_NAME_RULE}")


def load_split(processed: Path, recipe: str, schema: dict | None = None) -> tuple[pl.DataFrame, dict]:
    """A split (by name: a recipe's name, or the --name it was made with)
    and its metadata; refuses a split made on other features, and one whose
    membership is not the one its metadata vouches for. `schema`: the
    feature schema, when the caller has read it already."""
    lab = Lab(processed, Path())
    pq_path, meta_path = lab.split_parquet(recipe), lab.split_meta(recipe)
    remake = f"cis490 split --recipe {recipe}" if recipe in RECIPES else \
        f"cis490 split --recipe RECIPE --name {recipe}"
    if not pq_path.exists() or not meta_path.exists():
        # A name that is no recipe's may be a typo: the names there say so.
        others = lab.split_names() if recipe not in RECIPES else []
        raise SplitError(f"{pq_path} not found: run `{remake}` first"
                         + (f" (splits here: {', '.join(others)})" if others else ""))
    meta = read_json(meta_path, remake, SPLIT_META_KEYS)
    schema = schema or load_feature_schema(processed)
    df = read_parquet(pq_path, remake, ["episode_id", "part"])
    if membership_hash(df) != meta["membership_sha256"]:
        raise SplitError(f"{pq_path}: its episodes are not the ones {meta_path.name} records (membership "
                         f"{membership_hash(df)[:12]} vs {meta['membership_sha256'][:12]}); re-run `{remake}`")
    if meta["features_sha256"] != split_windows_digest(read_extracted_episodes(processed), df["episode_id"], schema):
        raise SplitError(f"{pq_path} is stale: some of its episodes were extracted again to other windows, "
                         f"or are gone from the extract; re-run `{remake}`")
    return df, meta


def split_identity(meta: dict) -> dict:
    """What a checkpoint records of the split it was trained on."""
    return {"name": meta.get("name", meta["recipe"]), "recipe": meta["recipe"], "params": meta["params"],
            "membership_sha256": meta["membership_sha256"], "features_sha256": meta["features_sha256"]}


def held_out_episodes(processed: Path, split_frame: pl.DataFrame) -> list[tuple[str, str]]:
    """(id, store path) of the split's test episodes that have windows, by id:
    what `--replay all` replays, and what a bundle carries for the Pi."""
    from core.extract import read_extracted_episodes
    test = split_frame.filter(pl.col("part") == "test")["episode_id"].to_list()
    return (read_extracted_episodes(processed).filter(pl.col("episode_id").is_in(test) & (pl.col("n_windows") > 0))
            .sort("episode_id").select("episode_id", "rel_path").rows())
