"""bench/quality.py on a tiny budget: every field of its JSON line is present and sane, and
a second run with the same seed gives the same figures (FID and AE-FD off: Inception is
too slow for a test)."""
import json
import math
import shutil
from pathlib import Path

import pytest

from conftest import TINY, load_bench

BENCH = Path(__file__).resolve().parent.parent / "bench" / "quality.py"
# a classifier trained on 512 images for one epoch: seconds, cached under its own name
AUX = ["--aux-set", "train_subset=512", "--aux-set", "epochs=1"]

FIELDS = ("bench", "model", "config", "overrides", "seed", "steps", "steps_requested",
          "epochs", "batch_size", "hardware_steps", "backend", "train_loss", "train_mse",
          "n_test", "mse", "mse_float", "float_max_abs_diff", "recon_accuracy",
          "classifier_test_accuracy", "n_profile", "posterior_rate", "recon_firing_rate",
          "recon_spikes_per_image", "recon_synops_per_image", "n_samples",
          "distinct_fraction", "prior_rate", "gen_firing_rate", "gen_spikes_per_image",
          "gen_synops_per_image", "is_classifier", "confident_fraction", "confident_of_64",
          "recon_confident_fraction", "real_confident_fraction", "n_fid", "fid", "aefd",
          "recon_fid", "train_s", "eval_s", "prepare_s", "threads", "out")
TIMES = ("train_s", "eval_s", "prepare_s", "out")


def _load_bench():
    return load_bench(BENCH.stem)


def _run(mod, capsys, cache, model, out=None):
    argv = ["--model", model, "--steps", "3", "--seed", "1", "--n-test", "48",
            "--n-samples", "24", "--n-profile", "8", "--n-fid", "0", "--cache", str(cache)]
    argv += [a for o in TINY for a in ("--set", o)] + AUX
    argv += ["--out", str(out)] if out else []
    line = mod.main(argv)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and json.loads(printed[0]) == json.loads(json.dumps(line))
    return line


def _check(line, model):
    assert set(FIELDS) <= set(line), set(FIELDS) - set(line)
    assert line["bench"] == "quality" and line["model"] == model
    assert line["config"] == "mnist-small" and line["overrides"] == TINY
    assert line["seed"] == 1 and line["steps"] == 3 and line["batch_size"] == 16
    assert line["backend"] == "emulator" and line["n_test"] == 48
    assert line["mse"] > 0 and math.isfinite(line["mse"])
    assert abs(line["mse"] - line["mse_float"]) < 1e-6 and line["float_max_abs_diff"] < 1e-5
    for key in ("recon_accuracy", "classifier_test_accuracy", "posterior_rate",
                "recon_firing_rate", "distinct_fraction", "prior_rate", "gen_firing_rate"):
        assert 0.0 <= line[key] <= 1.0, (key, line[key])
    assert line["distinct_fraction"] > 0
    for key in ("recon_spikes_per_image", "recon_synops_per_image", "gen_spikes_per_image",
                "gen_synops_per_image"):
        assert line[key] > 0, key
    assert 1.0 <= line["is_classifier"] <= 10.0
    for key in ("confident_fraction", "recon_confident_fraction", "real_confident_fraction"):
        assert 0.0 <= line[key] <= 1.0, key
    assert line["confident_of_64"] == round(line["confident_fraction"] * 24)   # 24 samples
    assert line["n_fid"] == 0 and line["fid"] is None and line["aefd"] is None
    assert line["recon_fid"] is None
    assert all(line[k] >= 0 for k in ("train_s", "eval_s", "prepare_s"))


def test_quality_bench_fields_and_determinism(tmp_path, capsys):
    mod = _load_bench()
    cache = tmp_path / "cache"
    first = _run(mod, capsys, cache, "fsvae", out=tmp_path / "run")
    _check(first, "fsvae")
    assert (tmp_path / "run" / "model.net").is_file()
    assert json.loads((tmp_path / "run" / "quality.json").read_text()) == first
    assert len(list(cache.iterdir())) == 1          # the classifier, trained once
    again = _run(mod, capsys, cache, "fsvae")
    assert again["out"] is None
    assert {k: v for k, v in again.items() if k not in TIMES} == \
        {k: v for k, v in first.items() if k not in TIMES}
    # --rescore measures the kept run again without training: the same figures
    rescored = mod.main(["--rescore", str(tmp_path / "run"), "--n-test", "48", "--n-samples",
                         "24", "--n-profile", "8", "--n-fid", "0", "--cache", str(cache)] + AUX)
    assert json.loads(capsys.readouterr().out.strip()) == json.loads(json.dumps(rescored))
    assert rescored["rescored"] is True and rescored["train_s"] == first["train_s"]
    assert {k: v for k, v in rescored.items() if k not in TIMES + ("rescored",)} == \
        {k: v for k, v in first.items() if k not in TIMES}
    # the metric models are cached under their whole recipe: a new recipe trains a new one
    mod.main(["--rescore", str(tmp_path / "run"), "--n-test", "8", "--n-samples", "8",
              "--n-profile", "8", "--n-fid", "0", "--cache", str(cache),
              "--aux-set", "train_subset=256", "--aux-set", "epochs=1"])
    capsys.readouterr()
    assert len(list(cache.iterdir())) == 2
    # a folder without a bench line: one message, no traceback
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "quality.json").write_text('{"bench": "emulator"}\n')
    with pytest.raises(SystemExit, match="no readable quality.json"):
        mod.main(["--rescore", str(tmp_path / "foreign"), "--cache", str(cache)])
    # a `neurovae train` run folder (no bench line, no .net) is measured the same way
    train_run = tmp_path / "train-run"
    train_run.mkdir()
    for f in ("checkpoint.pt", "config.json", "metrics.jsonl"):
        shutil.copy(tmp_path / "run" / f, train_run / f)
    measured = mod.main(["--rescore", str(train_run), "--n-test", "48", "--n-samples", "24",
                         "--n-profile", "8", "--n-fid", "0", "--cache", str(cache)] + AUX)
    capsys.readouterr()
    figures = [k for k in first if k not in TIMES + mod.TRAINING_FIELDS]
    assert {k: measured[k] for k in figures} == {k: first[k] for k in figures}
    assert (measured["steps"], measured["epochs"], measured["hardware_steps"]) == \
        (first["steps"], first["epochs"], first["hardware_steps"])
    assert not (train_run / "model.net").exists()        # measured, nothing written
    # its config and overrides are the preset and --sets that rebuild its checkpoint's config
    from neurovae.checkpoint import load_model
    from neurovae.config import make_config
    assert measured["config"] == "mnist-small" and "latent=8" in measured["overrides"]
    rebuilt = make_config(measured["config"], "fsvae",
                          measured["overrides"] + [f"seed={measured['seed']}"])
    assert rebuilt == load_model(train_run)[1]["config"]
    # options that only training reads are refused, not silently ignored
    with pytest.raises(SystemExit) as exc:
        mod.main(["--rescore", str(tmp_path / "run"), "--set", "lr=0.1", "--steps", "9"])
    assert exc.value.code == 2
    assert "drop --set, --steps" in capsys.readouterr().err


def test_quality_bench_esvae_and_the_synops_plot(tmp_path, capsys):
    mod = _load_bench()
    es = _run(mod, capsys, tmp_path / "cache", "esvae")
    _check(es, "esvae")
    fs = _run(mod, capsys, tmp_path / "cache", "fsvae")
    # bench/quality_plot.py over the two runs' lines, as a user passes saved outputs
    files = []
    for name, line in (("es", es), ("fs", fs)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text("progress text\n" + json.dumps(line) + "\n")
    plot = load_bench("quality_plot")
    png = tmp_path / "q.png"
    assert plot.main([str(f) for f in files] + ["--out", str(png)]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out["points"] == 2
    assert [r["mse"] for r in out["runs"]] == [es["mse"], fs["mse"]]
    # the front: a run is off it only if the other is no worse on both and better on one
    def beats(a, b, cost, q, sign):
        return (a[cost] <= b[cost] and sign * a[q] <= sign * b[q]
                and (a[cost] < b[cost] or sign * a[q] < sign * b[q]))
    for key, cost, q, sign in (("pareto_mse", "recon_synops_per_image", "mse", 1),
                               ("pareto_confident", "gen_synops_per_image",
                                "confident_fraction", -1)):
        expect = [r["model"] for r, o in ((es, fs), (fs, es)) if not beats(o, r, cost, q, sign)]
        assert [label.split()[0] for label in out[key]] == expect and expect
    # bad input: one line and exit 2
    (tmp_path / "other.json").write_text('{"bench": "emulator"}\n')
    assert plot.main([str(tmp_path / "other.json")]) == 2
    assert plot.main([str(tmp_path / "missing.json")]) == 2
    assert not (tmp_path / "quality-synops.png").exists()


def test_step_plan_spreads_steps_over_epochs(tiny_cfg):
    plan = _load_bench().step_plan
    cfg = tiny_cfg("fsvae")                          # 64 images, batches of 16: 4 per epoch
    assert plan(cfg, 3) == (1, 3)
    assert plan(cfg, 8) == (2, 4)
    assert plan(cfg, 6) == (2, 3)
