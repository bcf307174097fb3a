"""The op benchmark runs and writes complete results."""
import json
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_op  # noqa: E402


def test_benchmark_writes_results(tmp_path):
    output = tmp_path / "op.json"
    bench_op.main(["--device", "cpu", "--batch", "1", "--repeats", "1", "--warmup", "0",
                   "--output", str(output)])
    data = json.loads(output.read_text())
    assert data["environment"]["torch"] == torch.__version__
    methods = {(r["shape"], r["method"]) for r in data["results"]}
    assert methods == {(f"stage{k}", m) for k in range(1, 5)
                       for m in ("involution_cuda", "unfold", "shift_add")}
    for row in data["results"]:
        assert row["forward_ms"] > 0 and row["train_ms"] > 0 and row["peak_train_mb"] >= 0
        assert row["speedup_train"] > 0
    unfold = {r["shape"]: r for r in data["results"] if r["method"] == "unfold"}
    # The unfold buffer alone is KH*KW times the input: the memory gauge must see it.
    stage1 = unfold["stage1"]
    assert stage1["peak_train_mb"] > 49 * 64 * 56 * 56 * 4 / 2**20 * 0.9


def test_model_benchmark_writes_results(tmp_path):
    import bench_model

    output = tmp_path / "model.json"
    bench_model.main(["--batch", "2", "--size", "64", "--repeats", "1", "--warmup", "0",
                      "--output", str(output)])
    results = json.loads(output.read_text())["results"]
    assert [r["variant"] for r in results] == list(bench_model.VARIANTS)
    for row in results:
        assert row["train_step_ms"] > 0 and row["inference_images_per_s"] > 0 and row["peak_train_mb"] > 0
    assert results[0]["params_m"] == results[1]["params_m"] != results[2]["params_m"]


def test_sequence_benchmark_writes_results(tmp_path):
    import bench_1d

    output = tmp_path / "op1d.json"
    bench_1d.main(["--device", "cpu", "--batch", "1", "--channels", "32", "--length", "4096",
                   "--repeats", "1", "--output", str(output)])
    results = json.loads(output.read_text())["results"]
    assert {(r["method"], r["causal"]) for r in results} == {
        (m, c) for m in ("involution_cuda", "unfold") for c in (False, True)}
    assert all(r["train_ms"] > 0 and r["speedup_train"] > 0 for r in results)
    # the unfold formulation's 7x window buffer (3.5 MB here) shows in the memory gauge
    assert all(r["peak_train_mb"] > 3 for r in results if r["method"] == "unfold")
