"""A watched store that one episode cannot stop (issue 32): a name over the
event-size limit, netflow rows outside the episode, a FIFO manifest, a
manifest written in two steps; after each, the next good episode is still
predicted."""
import json
import os

import polars as pl
import pytest

from tests.commands.test_predict_cmd import _land, _test_episode, _wait
from tests.labs import install_lab, trained_lab

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(extracted_lab, tmp_path_factory):
    return trained_lab(extracted_lab, tmp_path_factory, "watching", [("gbt", "realistic")])


@pytest.fixture
def home(trained, lab_home, extracted_lab):
    return install_lab(trained, lab_home, store_of=extracted_lab[0])


def _edit(ep, **fields):
    m = json.loads((ep / "manifest.json").read_text())
    m.update(fields)
    (ep / "manifest.json").write_text(json.dumps(m))


def _netflow_elsewhere(ep):
    """Every netflow row a day after the episode: validate calls it degraded,
    extract's alignment guard refuses it."""
    import gzip
    import hashlib
    f = ep / "netflow.jsonl.gz"
    rows = [json.loads(x) for x in gzip.decompress(f.read_bytes()).splitlines()]
    for r in rows:
        r["t_wall_ns"] += 86_400 * 10 ** 9
    blob = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode(), mtime=0)
    f.write_bytes(blob)
    m = json.loads((ep / "manifest.json").read_text())
    m["files"]["netflow.jsonl.gz"].update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    (ep / "manifest.json").write_text(json.dumps(m))


def test_one_bad_episode_never_stops_the_watch(home):
    """Regression: each of these stopped `serve --watch` for good (a 413, an
    alignment error, a read that never returned, a manifest read half-written)."""
    from core.dashboard.app import create_app
    from core.dashboard.events import validate
    from core.dashboard.hub import EventHub
    from core.dashboard.server import ThreadedServer
    from core.live.watch import WatchThread
    from core.predict import load_engine
    eng = load_engine(home, "gbt", "realistic", "host")
    index = pl.read_parquet(home.processed / "validation_v1.parquet")
    rel = index.filter(pl.col("episode_id") == _test_episode(home))["rel_path"][0]
    host = home.default_store / rel.split("/")[0]
    hub = EventHub()

    def events():
        return hub.events()

    def ended(episode_id):
        return any(e["type"] == "episode" and e["event"] == "end" and e["episode_id"] == episode_id
                   for e in events())

    def noticed(words):
        return any(e["type"] == "notice" and words in e["text"] for e in events())
    with ThreadedServer(create_app(hub)) as srv, WatchThread(home.default_store, eng, "realistic", srv.url) as w:
        assert _wait(lambda: noticed("watching"))
        # A sample name of 40,000 characters: its events would be over 32 KiB.
        _land(home, rel, "ep700001-longname")
        _edit(host / "ep700001-longname", sample_name="s" * 40_000, profile="ransomware")
        assert _wait(lambda: ended("ep700001-longname"))
        # Netflow stamped a day late: degraded by validate, refused by extract's alignment guard.
        _land(home, rel, "ep700002-netflow")
        _netflow_elsewhere(host / "ep700002-netflow")
        assert _wait(lambda: noticed("ep700002-netflow: not predicted"))
        # A FIFO where the manifest should be.
        fifo = host / "ep700003-fifo"
        fifo.mkdir()
        os.mkfifo(fifo / "manifest.json")
        assert _wait(lambda: noticed("file_not_regular:manifest.json"))
        # A manifest written in two steps: half of it, then the rest.
        _land(home, rel, "ep700004-twostep")
        whole = (host / "ep700004-twostep" / "manifest.json").read_bytes()
        (host / "ep700004-twostep" / "manifest.json").write_bytes(whole[:len(whole) // 2])
        import time
        time.sleep(1.0)
        (host / "ep700004-twostep" / "manifest.json").write_bytes(whole)
        assert _wait(lambda: ended("ep700004-twostep"))
        # And a good one after all of them.
        _land(home, rel, "ep700005-good")
        assert _wait(lambda: ended("ep700005-good"))
    assert w.error is None
    got = events()
    for e in got:
        validate(e)
        assert len(json.dumps(e)) < 32 * 1024
    start = next(e for e in got if e["type"] == "episode" and e["episode_id"] == "ep700001-longname")
    assert len(start["sample_name"]) <= 200 and start["sample_name"].startswith("sss")
    assert not any(e["type"] == "notice" and "ep700004-twostep" in e["text"] and e["level"] == "refused"
                   for e in got)
