"""explorer.evaluate: latent metrics, the LSR-GAN measures, the per-epoch monitor, the mode-coverage
check over the shipped checkpoints, and the CLI."""
import json
from pathlib import Path

import pytest
import torch

import explorer
from explorer.checkpoint import build_model, read_metadata
from explorer.data import load_dataset
from explorer.evaluate import (drift, epoch_monitor, lsr_gan_metrics, posterior_draws, sampler_coverage, sampler_modes,
                               shipped_classifier)
from explorer.layout import list_models
from explorer.metrics.modes import classify

ROOT = Path(__file__).resolve().parent.parent
MIN_ENTROPY = 0.9  # issue 13: every gmm-10 and every sampler net, on 2,000 samples
# Documented misses (README, "Model quality"): seed 002's σx² = 1 VAE is the oversmoothing control the
# AR-ELBO paper argues against, and seed 003's consistency VAE is built on it. On Fashion-MNIST their
# *reconstructions* already lose the sandals and shirts (the classifier finds 16.8 % and 2.6 % of the test
# sandals in them, against 80.8 % for ar-elbo-iso-i), so no sampler of theirs can draw those classes. The d = 2 VAE
# (Kingma & Welling's manifold model) likewise: its reconstructions have class entropy 0.863, with coats
# at 0.4 % and shirts at 0.8 % (a 2-D code cannot keep the four upper-body classes apart). They are held
# to being below the bar: if one clears it, this list is out of date and the test says so.
KNOWN_BELOW = {("fashion-mnist", "vae", "gmm-10"), ("fashion-mnist", "consistency-vae", "gmm-10"),
               ("fashion-mnist", "vae-2d", "gmm-10")}


def retrained(path: Path) -> bool:
    """True for checkpoints trained under issue 13's convergence rule (their meta records why they
    stopped). Older ones are still in the retraining queue (README, "Model quality") and are
    reported by ``bench/targets.py``, not judged here."""
    return "stop_reason" in read_metadata(path)["meta"]


def shipped(dataset: str) -> list[Path]:
    paths = list(list_models(ROOT / "checkpoints", dataset).values())
    assert paths, f"no shipped checkpoints for {dataset}"  # never pass having checked nothing
    return paths


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_every_shipped_gmm10_and_sampler_net_draws_every_class(dataset):
    """Decoded samples of each model's ``gmm-10`` and of every ``sampler-net``, labelled by the
    dataset's shipped classifier: normalised class entropy >= 0.9 on 2,000 samples. A mode-collapsed
    sampler (only "1"s) or a collapsed model (one blurred image for every code) fails."""
    failures, checked = [], 0
    for path in [p for p in shipped(dataset) if retrained(p)]:
        model = explorer.load(path, expost=False)
        wanted = [s for s in ("gmm-10", "sampler-net") if s in model.samplers]
        for s, q in sampler_modes(model, dataset, n=2000, samplers=wanted, checkpoints=ROOT / "checkpoints",
                                  nn_n=0).items():
            checked += 1
            known = (dataset, path.stem, s) in KNOWN_BELOW
            if (q["class_entropy"] < MIN_ENTROPY) != known:
                failures.append(f"{path.stem}/{s}: class entropy {q['class_entropy']:.3f}"
                                f"{' (listed in KNOWN_BELOW but now above the bar)' if known else ''}, shares "
                                f"{[round(v, 2) for v in q['class_hist']]}")
    assert checked >= 1, f"no retrained checkpoint of {dataset} was checked"  # never pass having checked nothing
    assert not failures, "\n".join(failures + [_diagnosis(dataset)])


def _diagnosis(dataset: str) -> str:
    """What a failure report needs to tell a model from a machine difference: the classifier's
    accuracy on 1,000 test images and the CPU code path torch took."""
    x, y = load_dataset(dataset, "test", limit=1000)
    labels = classify(shipped_classifier(dataset, ROOT / "checkpoints"), x)
    return (f"classifier accuracy on 1,000 test images {float((labels == y).float().mean()):.4f}; torch "
            f"{torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads")


def test_the_check_fails_a_mode_collapsed_sampler():
    """The bar catches what issue 13 reported: LDC-VAE's first sampler net drew "1"s. A sampler whose
    codes all decode to one image (a point mass at one test image's code) scores entropy 0."""
    model = explorer.load(ROOT / "checkpoints" / "mnist" / "vae.safetensors", expost=False)
    x = load_dataset("mnist", "test", limit=1)[0]
    with torch.no_grad():
        z = model.encode(x)
    model.sample = lambda n, s="prior", generator=None: z.repeat(n, 1)  # a collapsed sampler
    q = sampler_modes(model, "mnist", n=500, samplers=["prior"], checkpoints=ROOT / "checkpoints", nn_n=0)["prior"]
    assert q["class_entropy"] < 0.05 < MIN_ENTROPY and q["classes_above_1pct"] == 1


def test_epoch_monitor_reports_test_terms_and_sampler_measures():
    torch.manual_seed(0)
    model = build_model("vae", latent_dim=4).eval()
    values = epoch_monitor("mnist", limit=300, n_samples=200, checkpoints=ROOT / "checkpoints")(model)
    assert {"test_loss", "test_rec", "test_kl", "test_mse"} <= set(values)
    x = load_dataset("mnist", "test", limit=300)[0]
    with torch.no_grad():
        mse = (x - model.decode(model.encode(x))).pow(2).flatten(1).sum(1).mean()
    assert values["test_mse"] == pytest.approx(float(mse), rel=1e-5)
    assert 0.0 <= values["class_entropy_prior"] <= 1.0 and values["fd_prior"] > 0
    assert model.training is False  # the monitor does not switch the model's mode for the caller


def test_evaluate_cli_reproduces_the_stored_metrics(capsys):
    from pathlib import Path

    from explorer.evaluate import main
    path = Path(__file__).resolve().parent.parent / "checkpoints" / "mnist" / "vae.safetensors"  # retrained (issue 13)
    assert main([str(path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"name", "model", "dataset", "latent_dim", "test_mse", "kl", "drift_kl", "active_units", "sigma2",
            "coverage"} <= set(res)
    assert res["name"] == "vae" and res["latent_dim"] == 16 and res["sigma2"] is None
    stored = explorer.load(path).meta["metrics"]
    for key in ("test_mse", "kl", "drift_kl"):
        assert res[key] == pytest.approx(stored[key], rel=1e-4)
    assert res["coverage"] == pytest.approx(stored["coverage"], rel=1e-4)
    # the mode coverage and memorisation numbers stored at train time recompute (same seed, same classifier)
    assert set(res["sampler_modes"]) >= set(stored["sampler_modes"]) >= {"prior", "gmm-10"}
    for s, q in stored["sampler_modes"].items():
        assert res["sampler_modes"][s]["class_hist"] == pytest.approx(q["class_hist"], abs=1e-9)
        assert res["sampler_modes"][s]["nn_median"] == pytest.approx(q["nn_median"], rel=1e-4)


def test_evaluate_cli_reports_a_bad_file(tmp_path, capsys):
    from explorer.evaluate import main
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"123")
    assert main([str(bad)]) == 1
    assert "x.safetensors" in capsys.readouterr().err


def test_lsr_gan_metrics_see_a_perfect_generator(gan, monkeypatch):
    """With G := the base decoder, G and D measures coincide."""
    x = load_dataset("mnist", "test", limit=64)[0]
    monkeypatch.setattr(gan, "decode", gan.base.decode)
    m = lsr_gan_metrics(gan, x)
    assert m["sharpness"] == pytest.approx(m["base_sharpness"])
    assert m["recon_mse"] == pytest.approx(m["base_recon_mse"])
    assert m["imagination_variance"] == pytest.approx(m["base_imagination_variance"], rel=1e-5)


def test_evaluate_cli_writes_a_table(tmp_path, monkeypatch, capsys):
    from explorer.evaluate import main

    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "t.json"
    assert main(["--dataset", "mnist", "--backbone", "classifier", "--n", "100", "--n-ref", "400",
                 "--models", "vae", "--out", str(out)]) == 0
    table = json.loads(out.read_text())
    assert table["label"] == "FD (classifier)" and table["backbone_info"]["test_accuracy"] >= 0.98
    assert {r["protocol"] for r in table["rows"]} == {"data", "rec", "sample", "interp"}
    assert "--models vae" in table["command"]
    assert main(["--dataset", "mnist", "--models", "no-such-model"]) == 2
    assert main(["--dataset", "mnist", "--backbone", "resnet"]) == 2
    # --update recomputes only the named model's rows and keeps the rest of the shipped models' rows (a row
    # of a checkpoint no longer in the folder goes); another n is refused
    vae_rows = [r for r in table["rows"] if r["model"] == "vae"]
    table["rows"] += [{**vae_rows[0], "model": "beta-vae"}, {**vae_rows[0], "model": "removed-model"}]
    out.write_text(json.dumps(table))
    assert main(["--dataset", "mnist", "--backbone", "classifier", "--n", "100", "--n-ref", "400",
                 "--models", "vae", "--out", str(out), "--update"]) == 0
    merged = json.loads(out.read_text())
    assert [r["model"] for r in merged["rows"]].count("beta-vae") == 1
    assert "removed-model" not in {r["model"] for r in merged["rows"]}
    assert merged["updates"][0]["dropped"] == ["removed-model"]
    assert len([r for r in merged["rows"] if r["model"] == "vae"]) == len(vae_rows)
    assert merged["command"] == table["command"] and merged["updates"][0]["models"] == ["vae"]
    assert main(["--dataset", "mnist", "--backbone", "classifier", "--n", "50", "--n-ref", "400",
                 "--models", "vae", "--out", str(out), "--update"]) == 2
    assert json.loads(out.read_text()) == merged  # a refused update leaves the table as it was
    # a table cut short is refused before any work, with one line naming the file, and left as it was
    cut = out.read_bytes()[:200]
    out.write_bytes(cut)
    assert main(["--dataset", "mnist", "--backbone", "classifier", "--n", "100", "--n-ref", "400",
                 "--models", "vae", "--out", str(out), "--update"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: --update: cannot read the existing table") and f"{out.name}: not JSON" in err[-1]
    assert out.read_bytes() == cut


def test_drift_and_sampler_coverage_handle_the_implicit_encoder(batch):
    torch.manual_seed(0)
    model = build_model("ldc-vae", latent_dim=4, particles=3).eval()
    d = drift(model, batch)
    assert set(d) == {"mu", "mu2", "drift_sq"} and d["drift_sq"].shape == (8,)
    cov = sampler_coverage(model, "mnist", n=50, test_mu=model.encode(batch.repeat(7, 1, 1, 1)[:50]).detach())
    assert set(cov) == {"prior", "sampler-net"}
    assert set(cov["sampler-net"]) == {"precision", "recall", "density", "coverage", "mmd"}



@pytest.mark.parametrize("family", ["vae", "ldc-vae", "ae"])
def test_posterior_draws_are_one_reproducible_draw_per_image(family, batch):
    """Gaussian and implicit encoders scatter around their means (a unit of a fresh net has
    posterior variance near 1); a deterministic encoder returns its codes."""
    torch.manual_seed(0)
    model = build_model(family, latent_dim=4, **({"particles": 3} if family == "ldc-vae" else {})).eval()
    z = posterior_draws(model, batch, seed=3)
    assert z.shape == (8, 4) and z.dtype == torch.float32
    assert torch.equal(z, posterior_draws(model, batch, seed=3))
    spread = (z - model.encode(batch)).abs().max().item()
    if family == "ae":
        assert spread == 0.0
    else:
        assert spread > 0.01 and not torch.equal(z, posterior_draws(model, batch, seed=4))
