"""Diagnosis at scale: the sources and result files (quick), the Ray batch job and the Ray Serve app (slow)."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from cropdx_hf.cli import main
from cropdx_hf.errors import DataError
from cropdx_hf.release.registry import DEFAULT_RELEASE
from cropdx_hf.scale.results import RESULTS_FILE, SCHEMA, done_keys, error_row, run_id, write_part, write_results
from cropdx_hf.scale.sources import list_photos
from tests.clean_env import block_imports
from tests.conftest import LEAVES, ROOT

LEAF_PHOTOS = sorted(str(p) for p in LEAVES.rglob("*.JPG"))


@pytest.fixture
def survey(tmp_path) -> Path:
    """The fixture leaves and three bad files: a text file, a truncated JPEG and an empty file."""
    folder = tmp_path / "season"
    shutil.copytree(LEAVES, folder / "leaves")
    (folder / "notes.jpg").write_text("not an image")
    (folder / "truncated.jpg").write_bytes(Path(LEAF_PHOTOS[0]).read_bytes()[:3000])
    (folder / "empty.png").write_bytes(b"")
    return folder


@pytest.fixture
def models_env(monkeypatch, default_exports):
    monkeypatch.setenv("CROPDX_MODELS", str(ROOT / "models"))
    monkeypatch.setenv("CROPDX_EXPORTS", str(default_exports))
    return default_exports


def test_a_source_is_a_folder_a_csv_of_paths_or_a_parquet_dataset(tmp_path):
    assert [p["path"] for p in list_photos(LEAVES)] == LEAF_PHOTOS
    csv = tmp_path / "photos.csv"
    csv.write_text("path\n" + "\n".join(os.path.relpath(p, tmp_path) for p in LEAF_PHOTOS[:3]) + "\n")
    assert [Path(p["path"]).resolve() for p in list_photos(csv)] == [Path(p).resolve() for p in LEAF_PHOTOS[:3]]
    parquet = tmp_path / "photos.parquet"
    embedded = [{"bytes": Path(p).read_bytes(), "path": Path(p).name} for p in LEAF_PHOTOS[:2]]
    datasets.Dataset.from_dict({"image": embedded}, features=datasets.Features({"image": datasets.Image()})
                               ).to_parquet(parquet)
    listed = list_photos(parquet)
    assert [p["image"] for p in listed] == [Path(p).read_bytes() for p in LEAF_PHOTOS[:2]]


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "nothing", "not a folder of photos, a CSV of paths or a dataset"),
    (lambda d: d, "no photos and no parquet files"),
    (lambda d: (d / "list.csv").write_text("name\nx.jpg\n") and d / "list.csv", "no column of photo paths"),
])
def test_a_source_with_no_photos_is_one_clear_error(tmp_path, make, message):
    with pytest.raises(DataError, match=message):
        list_photos(make(tmp_path))


def test_results_keep_one_row_per_photo_the_latest_and_resume_by_sha256(tmp_path):
    def rows(*items):
        return pa.Table.from_pylist([error_row(path, sha, f"run {n}", "m", "v") for path, sha, n in items],
                                    schema=SCHEMA)

    first = run_id()
    write_part(tmp_path, rows(("b.jpg", "1", 1), ("a.jpg", "2", 1), ("c.jpg", None, 1)), first, 0)
    (tmp_path / "parts" / "part-x-000001.tmp").write_bytes(b"half a part from a killed run")
    write_part(tmp_path, rows(("b.jpg", "3", 2)), first + "z", 0)  # b.jpg changed: diagnosed again, later
    assert done_keys(tmp_path) == {("b.jpg", "1"), ("a.jpg", "2"), ("b.jpg", "3")}
    table = write_results(tmp_path)
    assert table.column("path").to_pylist() == ["a.jpg", "b.jpg", "c.jpg"]
    assert table.column("error").to_pylist() == ["run 1", "run 2", "run 1"]
    assert pq.read_table(tmp_path / RESULTS_FILE).equals(table)


def test_diagnose_without_ray_names_the_extra(tmp_path):
    code = block_imports("ray") + (f"from cropdx_hf.cli import main\nsys.exit(main(['--models-dir', "
                                   f"{str(ROOT / 'models')!r}, '--exports-dir', {str(tmp_path)!r}, 'diagnose', "
                                   f"'--data', {str(LEAVES)!r}, '--out', {str(tmp_path / 'out')!r}]))")
    (tmp_path / DEFAULT_RELEASE).mkdir()
    (tmp_path / DEFAULT_RELEASE / "export_metrics.json").write_text("{}")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert 'pip install "cropdx-hf[scale]"' in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_two_node_cluster_writes_the_rows_the_local_run_writes(survey, tmp_path, models_env, capsys):
    from ray.cluster_utils import Cluster

    assert main(["diagnose", "--data", str(survey), "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "notes.jpg: not a readable image" in out and "truncated.jpg: the image is damaged" in out
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * 2**20})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)
        cluster.wait_for_nodes()
        assert main(["diagnose", "--data", str(survey), "--out", str(tmp_path / "cluster"), "--workers", "2",
                     "--ray-address", cluster.address]) == 0
    finally:
        cluster.shutdown()
    local = pq.read_table(tmp_path / "local" / RESULTS_FILE)
    assert local.num_rows == len(LEAF_PHOTOS) + 3
    assert pq.read_table(tmp_path / "cluster" / RESULTS_FILE).equals(local)
    errors = {Path(p).name: e for p, e, s in zip(*local.select(["path", "error", "status"]).to_pydict().values(),
                                                 strict=True) if s == "error"}
    assert sorted(errors) == ["empty.png", "notes.jpg", "truncated.jpg"] and "empty" in errors["empty.png"]


@pytest.mark.slow
def test_a_killed_job_resumes_and_ends_with_every_photo_once(survey, tmp_path, models_env):
    for copy in range(3):  # more photos, so the job is still running when it is killed
        shutil.copytree(LEAVES, survey / f"copy{copy}")
    argv = [sys.executable, "-m", "cropdx_hf.cli", "diagnose", "--data", str(survey), "--out", str(tmp_path / "out"),
            "--batch-size", "2"]
    job = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = tmp_path / "out" / "parts"
    deadline = time.monotonic() + 240
    while len(list(parts.glob("part-*.parquet"))) < 10 and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    written = pq.read_table(parts).num_rows if parts.is_dir() else 0
    total = 4 * len(LEAF_PHOTOS) + 3
    assert 0 < written < total, "the job was to be killed half way"
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"skipped {written:,} done before" in rerun.stdout
    table = pq.read_table(tmp_path / "out" / RESULTS_FILE)
    assert table.num_rows == total and len(set(table.column("path").to_pylist())) == total


@pytest.mark.slow
def test_the_serve_app_answers_predict_and_404s_an_unknown_model(models_env):
    import ray
    from ray import serve

    from cropdx_hf.scale.serve import app

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 8765})
        serve.run(app({"models": DEFAULT_RELEASE}), name="cropdx", route_prefix="/")
        base, photo = "http://127.0.0.1:8765", {"file": ("leaf.jpg", Path(LEAF_PHOTOS[0]).read_bytes())}
        assert requests.get(f"{base}/health", timeout=30).json()["models"] == [DEFAULT_RELEASE]
        assert requests.get(f"{base}/model/version", timeout=30).json()["model"] == DEFAULT_RELEASE
        answer = requests.post(f"{base}/predict", files=photo, timeout=60)
        assert answer.status_code == 200 and answer.json()["status"] in ("diagnosed", "retake")
        unknown = requests.post(f"{base}/predict?model=no_such_model", files=photo, timeout=60)
        assert unknown.status_code == 404 and unknown.json()["available"] == [DEFAULT_RELEASE]
        bad = requests.post(f"{base}/predict", files={"file": ("notes.jpg", b"text")}, timeout=60)
        assert bad.status_code == 400 and "not a readable image" in bad.json()["error"]
    finally:
        serve.shutdown()
        ray.shutdown()
