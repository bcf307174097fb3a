"""The benchmarks run, write complete results, and refuse numbers they cannot stand behind."""
import json
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import baselines  # noqa: E402
import bench_op  # noqa: E402
import measure  # noqa: E402

QUICK = ["--device", "cpu", "--batch", "1", "--rounds", "1", "--min-runs", "1", "--min-seconds", "0",
         "--warmup", "0", "--allow-unstable"]


def run_benchmark(tmp_path, *extra):
    output = tmp_path / "op.json"
    code = bench_op.main([*QUICK, "--output", str(output), *extra])
    return code, json.loads(output.read_text())


def test_benchmark_writes_results(tmp_path):
    code, data = run_benchmark(tmp_path, "--methods", "involution_cuda", "shift_add")
    assert code == 0 and data["complete"] and not data["skipped"]
    env = data["environment"]
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["argv"][-2:] == ["involution_cuda", "shift_add"] and env["python"] and env["cpu_model"]
    assert isinstance(env["isa_flags"], list) and env["last_level_cache_mb"] > 0
    methods = {(r["shape"], r["method"]) for r in data["results"]}
    assert methods == {(f"stage{k}", m) for k in range(1, 5) for m in ("involution_cuda", "unfold", "shift_add")}
    for row in data["results"]:
        assert "error" not in row and row["rotation_copies"] >= 2
        for mode in bench_op.MODES:
            stats = row[mode]
            assert 0 < stats["min_ms"] <= stats["median_ms"] == row[f"{mode}_ms"]
            assert row[f"{mode}_x_floor"] == pytest.approx(row[f"{mode}_ms"] / row[f"{mode}_floor_ms"])
        # backward's floor is two op-sized copies, a training step's three; each of its ops,
        # timed alone for this extension only, one
        assert row["train_floor_ms"] == pytest.approx(3 * row["copy_floor"]["median_ms"])
        for mode in bench_op.OP_MODES:
            assert (mode in row) == (row["method"] == "involution_cuda")
            if mode in row:
                assert 0 < row[mode]["min_ms"] <= row[mode]["median_ms"] == row[f"{mode}_ms"]
                assert row[f"{mode}_floor_ms"] == pytest.approx(row["copy_floor"]["median_ms"])
                assert row[f"{mode}_x_floor"] == pytest.approx(row[f"{mode}_ms"] / row[f"{mode}_floor_ms"])
        assert row["peak_train_mb"] >= 0 and row["speedup_train"] > 0
    ours = [r for r in data["results"] if r["method"] == "involution_cuda"]
    for row in ours:
        fastest = min((r for r in data["results"] if r["shape"] == row["shape"] and r is not row),
                      key=lambda r: r["train_ms"])
        assert row["best_competitor_train"] == fastest["method"]
    unfold = {r["shape"]: r for r in data["results"] if r["method"] == "unfold"}
    # The unfold buffer alone is KH*KW times the input: the memory gauge must see it.
    assert unfold["stage1"]["peak_train_mb"] > 49 * 64 * 56 * 56 * 4 / 2**20 * 0.9


def test_compiled_baseline_counts_its_graphs():
    compiled = baselines.CompiledShiftAdd()
    x, w = torch.randn(1, 4, 6, 5, requires_grad=True), torch.randn(1, 2, 3, 3, 6, 5, requires_grad=True)
    with torch.no_grad():
        out = compiled(x, w)
    torch.testing.assert_close(out, baselines.shift_add(x, w).detach())
    compiled(x, w).sum().backward()
    assert compiled.compiles == 2  # inference and training: what a benchmark case accepts
    compiled(torch.randn(1, 4, 7, 5), torch.randn(1, 2, 3, 3, 7, 5))  # another shape compiles again
    assert compiled.compiles == 3


def fake_row(forward=1.0, backward=2.0, train=3.0, iqr=0.05, compiles=None):
    row = {mode: {"median_ms": ms, "iqr_rel": iqr} for mode, ms in
           zip(bench_op.MODES, (forward, backward, train))}
    return {**row, "compiles": compiles}


@pytest.mark.parametrize("row, reason", [
    (fake_row(), None),
    (fake_row(backward=3.5, train=3.0), "backward slower than forward+backward"),
    (fake_row(iqr=0.4), "forward spread 40% > 25%"),
    (fake_row(compiles=1), "compiled 1 graphs, expected 2"),
])
def test_inconsistent_rows_are_rejected(row, reason):
    reasons = bench_op.inconsistencies(row, max_iqr=0.25)
    assert (reasons == []) if reason is None else any(reason in text for text in reasons)


def test_hand_written_shift_add_gradients_match_the_op():
    x, w = torch.randn(2, 6, 9, 7, dtype=torch.float64), torch.randn(2, 3, 3, 5, 4, 7, dtype=torch.float64)
    options = dict(stride=(2, 1), padding=(1, 2), dilation=(2, 1))
    assert torch.autograd.gradcheck(lambda a, b: baselines.shift_add(a, b, **options),
                                    (x.requires_grad_(), w.requires_grad_()))


def test_a_failing_case_does_not_end_the_run(tmp_path, monkeypatch):
    table = bench_op.method_table

    def with_a_broken_method(device, official_checkout=None):
        def broken():
            raise RuntimeError("this method is broken")
        return {**table(device, official_checkout), "broken": broken}

    monkeypatch.setattr(bench_op, "method_table", with_a_broken_method)
    code, data = run_benchmark(tmp_path, "--methods", "broken", "--shapes", "stage4")
    assert code == 1
    rows = {r["method"]: r for r in data["results"]}
    assert "this method is broken" in rows["broken"]["error"] and rows["unfold"]["train_ms"] > 0


def test_results_are_written_after_every_group(tmp_path, monkeypatch):
    measured = bench_op.measure_group

    def killed_after_one_group(shape, *args):
        if shape.name != "stage3":
            raise KeyboardInterrupt
        return measured(shape, *args)

    monkeypatch.setattr(bench_op, "measure_group", killed_after_one_group)
    output = tmp_path / "op.json"
    with pytest.raises(KeyboardInterrupt):
        bench_op.main([*QUICK, "--output", str(output), "--shapes", "stage3", "stage4", "--methods", "unfold"])
    data = json.loads(output.read_text())
    assert not data["complete"] and [r["shape"] for r in data["results"]] == ["stage3"]


def test_cpu_timer_times_the_call_alone():
    """The prepare step and the cache flush run outside the timed interval."""
    timer = measure.Timer(torch.device("cpu"), min_runs=3)
    flushes = []
    timer.flush = lambda: flushes.append(time.perf_counter())
    times = timer.chunk(lambda k, state: time.sleep(0.002), 0, prepare=lambda k: time.sleep(0.05))
    assert len(times) == 3 == len(flushes) and all(1.5 < t < 30 for t in times)


def test_official_cupy_op_loads_with_cupy_13(tmp_path, monkeypatch):
    """CuPy 13 has no cupy.cuda.compile_with_cache; the loader supplies it through RawModule."""
    built = []

    class RawModule:
        def __init__(self, code):
            built.append(code)

        def get_function(self, name):
            return lambda *args: name

    fake_cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(), RawModule=RawModule)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    source = tmp_path / "cls" / "mmcls" / "models" / "utils" / "involution_cuda.py"
    source.parent.mkdir(parents=True)
    source.write_text(textwrap.dedent("""
        import cupy
        from mmcv.cnn import ConvModule
        def _involution_cuda(input, weight, stride=1, padding=0, dilation=1):
            kernel = cupy.cuda.compile_with_cache("extern \\"C\\" __global__ void k() {}")
            return kernel.get_function("k")(), padding
    """))
    official = baselines.load_official_cupy(str(tmp_path))
    assert official(None, torch.empty(1, 1, 7, 7, 1, 1)) == ("k", 3) and built


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


def test_tile_loop_benchmark_times_the_kernels_tiles_at_every_level(tmp_path):
    import bench_tile_loop

    output = tmp_path / "tile.json"
    bench_tile_loop.main(["--batch", "2", "--output", str(output)])
    data = json.loads(output.read_text())
    rows = data["results"]
    assert [row["level"] for row in rows] == bench_tile_loop.available_levels()
    threads = data["environment"]["threads"]
    for row in rows:
        shapes = [row, row["narrow"]] if "narrow" in row else [row]
        for shape in shapes:
            assert shape["lanes"] * 4 == shape["vector_bytes"]
            assert shape["tile_ns_per_vector_multiply_add"] > 0
            assert shape["aligned_tile_ns_per_vector_multiply_add"] > 0
            assert shape["peak_ns_per_vector_multiply_add"] > 0
        # without fused multiply-add, also the peak with a broadcast weight per four
        assert ("broadcast_peak_ns_per_vector_multiply_add" in row) == (row["level"] == "default")
        # stage 1 (C64, 56 x 56): 2 * 64 * 56 rows of ceil(56 / lanes) vectors, 49 taps each
        vectors = 2 * 64 * 56 * -(-56 // row["lanes"]) * 49
        expected = vectors * row["tile_ns_per_vector_multiply_add"] / threads * 1e-6
        assert row["loop_bound_forward_ms"]["stage1"] == pytest.approx(expected)
        # the 16-channel pixel tile: 2 * 64 / 16 vectors per pixel
        assert row["channel_tile_pixels"] == {"default": 3, "avx2": 7, "avx512": 16}[row["level"]]
        expected = 2 * 4 * 56 * 56 * 49 * row["channel_tile_ns_per_multiply_add"] / threads * 1e-6
        assert row["channel_loop_bound_forward_ms"]["stage1"] == pytest.approx(expected)
        # as the kernels run it: a rate per tile width; stage 4's rows of 7 are one tile of 7, or
        # tiles of 2, 2 and 3 at the baseline level
        rates = row["channel_tile_as_run_ns_per_multiply_add"]
        assert len(rates) == row["channel_tile_pixels"] and min(rates) > 0
        widths = [2, 2, 3] if row["level"] == "default" else [7]
        assert bench_tile_loop.tile_widths(7, row["channel_tile_pixels"]) == widths
        assert bench_tile_loop.tile_widths(7, 6) == [3, 4]
        expected = 2 * 32 * 7 * sum(w * 49 * rates[w - 1] for w in widths) / threads * 1e-6
        assert row["channel_as_run_loop_bound_forward_ms"]["stage4"] == pytest.approx(expected)
        # grad_weight's plane tile at each start of its first read in a 64-byte line
        starts = row["plane_tile_ns_by_start"]
        assert len(starts) == 16 and min(starts) > 0


TINY = bench_op.Shape("tiny", batch=1, channels=16, size=9, kernel=3)


def test_probe_measures_a_method_against_the_float64_reference(monkeypatch):
    assert bench_op.probe_case(TINY, "involution_cuda", "float32", "cpu") < 1e-5
    table = bench_op.method_table

    def with_a_wrong_method(device, official_checkout=None):
        return {**table(device, official_checkout), "wrong": lambda: lambda x, w, **o: 1.5 * baselines.shift_add(x, w, **o)}

    monkeypatch.setattr(bench_op, "method_table", with_a_wrong_method)
    assert bench_op.probe_case(TINY, "wrong", "float32", "cpu") == pytest.approx(0.5)


def test_a_probed_method_runs_in_a_process_of_its_own():
    bench_op.check_probed(TINY, "shift_add_compiled", torch.float32, torch.device("cpu"))


@pytest.mark.parametrize("returncode, stdout, stderr, message", [
    (-6, "", "noise\ndouble free or corruption (!prev)\n", "signal SIGABRT: double free or corruption"),
    (1, "", "ValueError: no such method\n", "exit status 1: ValueError: no such method"),
    (0, "0.25\n", "", "wrong results: error 0.25"),
    (0, "nan\n", "", "wrong results: error nan"),
])
def test_a_probe_that_crashes_or_disagrees_raises(monkeypatch, returncode, stdout, stderr, message):
    done = types.SimpleNamespace(returncode=returncode, stdout=stdout, stderr=stderr)
    monkeypatch.setattr(bench_op.subprocess, "run", lambda *args, **kwargs: done)
    with pytest.raises((RuntimeError, ValueError), match=message.replace("(", r"\(").replace(")", r"\)")):
        bench_op.check_probed(TINY, "shift_add_compiled", torch.float32, torch.device("cpu"))


def test_an_unavailable_probed_method_does_not_fail_the_run(tmp_path, monkeypatch, capsys):
    def crashed(shape, name, dtype, device):
        raise RuntimeError("a run in a process of its own ended with signal SIGABRT: double free")

    monkeypatch.setattr(bench_op, "check_probed", crashed)
    code, data = run_benchmark(tmp_path, "--methods", "shift_add_compiled", "--shapes", "stage4")
    assert code == 0
    rows = {r["method"]: r for r in data["results"]}
    assert "SIGABRT" in rows["shift_add_compiled"]["error"] and rows["unfold"]["train_ms"] > 0
    assert "UNAVAILABLE stage4 float32 shift_add_compiled" in capsys.readouterr().out


def test_a_method_timed_in_a_process_of_its_own_returns_its_row():
    _, args = bench_op.parse_args(QUICK)
    row = bench_op.measure_isolated(TINY, "shift_add", torch.float32, torch.device("cpu"), args)
    assert row["method"] == "shift_add" and "error" not in row
    assert row["train_ms"] > 0 and row["forward_x_floor"] > 0 and row["copy_gbs"] > 0


def test_a_probed_method_that_crashes_while_timed_does_not_end_the_run(tmp_path, monkeypatch, capsys):
    crashed = types.SimpleNamespace(returncode=-6, stdout="", stderr="free(): invalid pointer\n")
    monkeypatch.setattr(bench_op, "check_probed", lambda *args: None)
    monkeypatch.setattr(bench_op.subprocess, "run", lambda *args, **kwargs: crashed)
    code, data = run_benchmark(tmp_path, "--methods", "shift_add_compiled", "--shapes", "stage4")
    assert code == 0
    rows = {r["method"]: r for r in data["results"]}
    assert "timing it in a process of its own ended with signal SIGABRT: free(): invalid pointer" in rows["shift_add_compiled"]["error"]
    assert rows["unfold"]["train_ms"] > 0
    assert "UNAVAILABLE stage4 float32 shift_add_compiled" in capsys.readouterr().out


def test_report_renders_results_and_leaves_rejected_rows_out(tmp_path, capsys):
    import report

    code, data = run_benchmark(tmp_path, "--methods", "involution_cuda", "--shapes", "stage3", "stage4")
    path = str(tmp_path / "op.json")
    report.main([path])
    table = capsys.readouterr().out
    ours = {r["shape"]: r for r in data["results"] if r["method"] == "involution_cuda"}
    assert f"| {ours['stage4']['forward_ms']:.2f} |" in table and "| involution_cuda |" in table
    report.main(["--levels", path, path])
    assert sum(line.startswith("| stage4 (C512") for line in capsys.readouterr().out.splitlines()) == 2
    report.main(["--targets", path])
    targets = capsys.readouterr().out.splitlines()
    assert targets[2].startswith("| target |") and len(targets) == 4
    assert f"{ours['stage3']['forward_x_floor']:.1f} / {ours['stage4']['forward_x_floor']:.1f}" in targets[3]
    # a rejected row is named below the levels table and shown as "-" against the targets
    ours["stage3"]["rejected"] = ["forward spread 60% > 50%"]
    rejected = tmp_path / "rejected.json"
    rejected.write_text(json.dumps(data))
    report.main(["--levels", str(rejected)])
    levels = capsys.readouterr().out
    assert "| stage3 (C256" not in levels and "stage3 float32" in levels.splitlines()[-1]
    assert "forward spread 60%" in levels.splitlines()[-1]
    report.main(["--targets", str(rejected)])
    assert f"| - / {ours['stage4']['forward_x_floor']:.1f} |" in capsys.readouterr().out
    for argv, message in [([path, path], "several with --levels"),
                          (["--levels", "--targets", path], "not allowed with"),
                          ([str(tmp_path / "missing.json")], "missing.json")]:
        with pytest.raises(SystemExit):
            report.main(argv)
        assert message in capsys.readouterr().err
