"""The batch runner on a real Ray cluster (a head and one more node on 127.0.0.1): the same records as the local
runner, workers killed mid-run, an item that costs its worker every try, shards + merge, a killed driver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from affectreason.backends.load import BackendSpec
from affectreason.batch import Item, _safe_record, items_in, manifest_path, run
from affectreason.cli import app
from affectreason.cluster import RayPool
from affectreason.cues.pipeline import CueConfig, CueExtractor
from affectreason.schema import Clip
from affectreason.shard import shard_of
from tests.judge_server import JudgeServer
from tests.media_factory import still_clip

# Ray swaps 127.0.0.1 for the machine's own address unless this is a one-machine cluster, which it reads once, when
# imported: so before the import, for the cluster of these tests to stay on loopback
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.integration

CONFIG = CueConfig(asr=False)  # what the CLI's --no-asr builds; ASR would only make each clip slower here
RULES = ["--backend", "rules", "--no-asr"]


def _by_id(path: Path) -> dict[str, dict]:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_id = {r["clip"]["id"]: r for r in records}
    assert len(by_id) == len(records), "a clip was written twice"
    return by_id


@pytest.fixture(scope="module")
def clips(media, tmp_path_factory) -> Path:
    """20 clips: the two package photos in turn, 1.0 to 1.4 s, with speech."""
    folder = tmp_path_factory.mktemp("clips20")
    for i in range(20):
        image = media["astronaut_png"] if i % 2 == 0 else media["grace_jpg"]
        still_clip(folder / f"clip_{i:02d}.mp4", image, media["speech_wav"], 1.0 + 0.1 * (i % 5))
    return folder


@pytest.fixture(scope="module")
def long_clip(media, tmp_path_factory) -> Path:
    """A 20 s silent clip: about 4 s of a worker's time at 0.2x real time."""
    return still_clip(tmp_path_factory.mktemp("long") / "long.mp4", media["astronaut_png"], None, 20.0)


@pytest.fixture(scope="module")
def local_run(clips, tmp_path_factory) -> dict[str, dict]:
    """The local runner's records of the 20 clips (rules backend, 2 worker processes)."""
    out = tmp_path_factory.mktemp("local") / "local.jsonl"
    result = run(items_in(clips), out, CONFIG, BackendSpec("rules"), workers=2)
    assert result.counts() == {"skipped": 0, "ok": 20, "failed": 0}
    return _by_id(out)


@pytest.fixture(scope="module")
def cluster():
    """The address of a two-node Ray cluster on 127.0.0.1 (one CPU each)."""
    from ray.cluster_utils import Cluster

    env = pytest.MonkeyPatch()
    env.setenv("RAY_USAGE_STATS_ENABLED", "0")
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes()
        assert nodes.address.startswith("127.0.0.1:")
        yield nodes.address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        nodes.shutdown()
        env.undo()


def test_a_ray_cluster_writes_the_local_runners_records(clips, local_run, cluster, tmp_path):
    out = tmp_path / "ray.jsonl"
    command = ["explain", str(clips), *RULES, "--ray", cluster, "--out", str(out)]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert _by_id(out) == local_run
    run_entry = json.loads(manifest_path(out).read_text())["runs"][-1]
    assert run_entry["ok"] == 20
    cluster_info = run_entry["cluster"]
    assert (cluster_info["address"], cluster_info["nodes"], cluster_info["cpus"]) == (cluster, 2, 2.0)
    assert (cluster_info["workers"], cluster_info["restarts"]) == (2, 0)
    again = CliRunner().invoke(app, command)  # resumable exactly as a local run: nothing redone
    assert again.exit_code == 0, again.output
    assert "0 clips done, 0 failed, 20 already done before" in again.output
    assert len(out.read_text().splitlines()) == 20


def test_workers_killed_mid_run_lose_no_clip_and_write_none_twice(clips, local_run, cluster, tmp_path):
    out = tmp_path / "killed.jsonl"
    pool = RayPool(cluster)
    killed: list[int] = []

    def kill_after_four(record: dict) -> None:
        # the worker that sent this record is idle now, the other is decoding a clip: kill both
        if sum(1 for _ in out.open()) >= 4 and not killed:
            for pid in pool.pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pool.pids)

    with pool:
        result = run(items_in(clips), out, CONFIG, BackendSpec("rules"), on_done=kill_after_four, pool=pool)
    assert len(killed) == 2
    assert result.counts() == {"skipped": 0, "ok": 20, "failed": 0}
    assert pool.describe()["restarts"] >= 1
    assert len(out.read_text().splitlines()) == 20
    assert _by_id(out) == local_run


def _kill_whoever_opens(path: Path, stop: threading.Event) -> set[int]:
    """Kill (SIGKILL) every Ray worker that has ``path`` open, until ``stop``; the pids killed."""
    killed: set[int] = set()

    def watch() -> None:
        while not stop.is_set():
            for proc in psutil.process_iter(["name"]):
                try:
                    if (proc.info["name"] or "").startswith("ray::_Worker") and any(
                            f.path == str(path) for f in proc.open_files()):
                        proc.kill()
                        killed.add(proc.pid)
                except psutil.Error:
                    continue  # it ended meanwhile
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def test_an_item_that_kills_its_worker_every_try_is_recorded_and_the_rest_go_on(clips, local_run, cluster, media,
                                                                                 long_clip, tmp_path):
    poison = long_clip
    items = [*items_in(clips)[:3], Item(Clip(path=str(poison), id="poison")),
             Item(Clip(path=str(media["truncated"]), id="truncated"))]
    stop = threading.Event()
    killed = _kill_whoever_opens(poison, stop)
    try:
        with RayPool(cluster, tries=2) as pool:
            result = run(items, tmp_path / "out.jsonl", CONFIG, BackendSpec("rules"), pool=pool)
    finally:
        stop.set()
    assert result.ok == 3, result.failed
    assert len(killed) == 2, killed  # one worker per try
    # Ray reports the lost worker as ActorDiedError or ActorUnavailableError, depending on when it notices
    assert result.failed["poison"].startswith("worker failed on each of 2 tries: worker died (Actor")
    # a clip that cannot be read fails in the worker exactly as in a local run, without costing the worker
    local = _safe_record(items[-1], CueExtractor(CONFIG), None)
    assert result.failed["truncated"] == local["error"]
    records = _by_id(tmp_path / "out.jsonl")
    assert {k: records[k] for k in local_run if k in records} == {k: local_run[k] for k in ("clip_00", "clip_01",
                                                                                             "clip_02")}


def test_an_item_past_its_timeout_is_tried_again_then_recorded(cluster, long_clip, tmp_path):
    with RayPool(cluster, tries=2, item_timeout_s=1.0) as pool:
        result = run([Item(Clip(path=str(long_clip), id="slow"))], tmp_path / "out.jsonl", CONFIG, pool=pool)
    assert result.failed == {"slow": "worker failed on each of 2 tries: timed out after 1 s"}
    assert pool.describe()["restarts"] == 2


def test_shards_then_merge_equal_the_whole_run(clips, local_run, cluster, tmp_path):
    runner = CliRunner()
    shards = [tmp_path / f"part{k}.jsonl" for k in (1, 2, 3)]
    for k, out in enumerate(shards, 1):
        result = runner.invoke(app, ["explain", str(clips), *RULES, "--ray", cluster, "--shard", f"{k}/3",
                                     "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert {shard_of(clip_id, 3) for clip_id in _by_id(out)} == {k}
        assert json.loads(manifest_path(out).read_text())["shard"] == f"{k}/3"
    assert sum(len(_by_id(out)) for out in shards) == 20
    merged = tmp_path / "all.jsonl"
    result = runner.invoke(app, ["merge", *map(str, shards), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    assert "20 clips merged" in result.output
    assert _by_id(merged) == local_run
    assert list(_by_id(merged)) == sorted(local_run)  # in the order of the input folder


def test_a_served_model_gets_its_cues_from_the_cluster(clips, local_run, cluster, tmp_path):
    # threads batching: the cues are extracted on the cluster into the cue cache, the requests go from here
    out = tmp_path / "served.jsonl"
    with JudgeServer() as server:
        result = CliRunner().invoke(app, ["explain", str(clips), "--backend", "openai", "--endpoint", server.url,
                                          "--server-model", "served", "--no-asr", "--ray", cluster, "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = _by_id(out)
    assert {k: r["cues"] for k, r in records.items()} == {k: r["cues"] for k, r in local_run.items()}
    assert {r["explanation"]["backend"] for r in records.values()} == {"openai"}
    cache = out.with_name("served.cues.jsonl")
    assert len(cache.read_text().splitlines()) == 20
    assert json.loads(manifest_path(cache).read_text())["runs"][-1]["cluster"]["workers"] == 2


def test_eval_on_the_cluster_equals_eval_here(anchors, cluster, tmp_path):
    runner = CliRunner()
    figures = {}
    for where, extra in (("here", []), ("ray", ["--ray", cluster])):
        out = tmp_path / where
        result = runner.invoke(app, ["eval", "meld-text", "--limit", "8", "--backend", "rules", "--out", str(out),
                                     "--anchors", str(anchors), "--bootstrap", "0", *extra])
        assert result.exit_code == 0, result.output
        tasks = json.loads((out / "results.json").read_text())["tasks"]
        figures[where] = {name: (task["status"], task["figures"]) for name, task in tasks.items()}
    assert figures["ray"] == figures["here"]
    assert any(figs for _, figs in figures["ray"].values())


def test_a_model_that_cannot_load_on_the_workers_is_one_line(clips, cluster, tmp_path):
    result = CliRunner().invoke(app, ["explain", str(clips), "--backend", "hf", "--model", str(tmp_path / "nothing"),
                                      "--ray", cluster, "--out", str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2, result.output
    assert "\nerror: Ray workers could not start: ModelMissing: " in result.output
    assert str(tmp_path / "nothing") in result.output and "Traceback" not in result.output


def test_an_unreachable_cluster_is_one_line(clips, tmp_path):
    result = CliRunner().invoke(app, ["cues", str(clips), "--no-asr", "--ray", "127.0.0.1:9", "--out",
                                      str(tmp_path / "o.jsonl")])
    assert result.exit_code == 2
    assert "--ray 127.0.0.1:9: nothing answers there" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_a_killed_driver_leaves_no_ray_process_behind(clips, tmp_path):
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}  # not the test cluster's settings
    env |= {"HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen([sys.executable, "-m", "affectreason.cli", "cues", str(clips), "--no-asr", "--ray",
                               "local", "--out", str(out)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out.is_file() and len(out.read_text().splitlines()) >= 2):
            assert driver.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        below = psutil.Process(driver.pid).children(recursive=True)
        names = {proc.name() for proc in below}
        assert {"gcs_server", "raylet"} <= names
    finally:
        driver.kill()
        driver.wait()
    _, alive = psutil.wait_procs(below, timeout=15)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
