"""The report scripts behind the README's quality tables run on the shipped checkpoints and results/
and print a row for every shipped model (they import each other's readers, so one change can break
the other without any timed benchmark noticing)."""
import re
import subprocess
import sys
from pathlib import Path

from explorer.layout import list_models

ROOT = Path(__file__).resolve().parent.parent


def run(script: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / script)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_targets_prints_every_shipped_model_and_a_verdict_count():
    text = run("targets.py")
    for ds in ("mnist", "fashion-mnist"):
        for name in list_models(ROOT / "checkpoints", ds):
            assert re.search(rf"^\| {ds} \| {re.escape(name)} \|", text, re.M), (ds, name)
    n, met, missed = map(int, re.search(r"^(\d+) checks: (\d+) met, (\d+) missed", text, re.M).groups())
    assert n >= met + missed and met > 0


def test_quality_report_prints_every_sampler_of_every_retrained_model():
    text = run("quality_report.py")
    assert "#### mnist" in text and "#### fashion-mnist" in text
    assert re.search(r"^\| ar-elbo-iso-i \| gmm-10 \| [\d.]+ → \*\*[\d.]+\*\*", text, re.M)
    assert re.search(r"^\| ldc-vae \| sampler-net \|", text, re.M)


def test_ldc_sampler_target_refuses_bad_arguments_before_loading_anything():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "ldc_sampler_target.py"), "--cov-scale", "0"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "--cov-scale > 0" in out.stderr, out.stderr[-500:]


def test_gmm_codes_refuses_bad_arguments_before_loading_anything():
    for args, needle in ((["--n", "10"], "--n >= 2000"), (["--models", "no-such-model"], "no-such-model: not shipped")):
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "gmm_codes.py"), *args], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
        assert out.returncode == 2 and needle in out.stderr, out.stderr[-500:]
