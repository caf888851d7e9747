"""Before/after table of every sampler's mode coverage, memorisation and Fréchet distance (issue 13).

    python bench/quality_report.py [--checkpoints checkpoints] [--results results] [--before docs/issue-13-before.json]

For each dataset, model and sampler: class entropy, smallest class share and nearest-training-image
median of 2,000 decoded samples (checkpoint or sidecar metadata, ``sampler_modes``), and the
classifier Fréchet distance at n = 10,000 (``results/<dataset>-classifier.json``), beside the same
numbers for the checkpoints before issue 13 (``docs/issue-13-before.json``). Prints Markdown.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import classifier_rows, fd_table, sidecar_modes  # noqa: E402

from explorer.checkpoint import read_metadata  # noqa: E402
from explorer.layout import list_models  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["prior", "gmm-10", "gmm-100", "two-stage", "sampler-net"]
RENAMED = {"lsr-gan": "lsr-gan-lambda1", "lsr-gan-lambda0.01": "lsr-gan"}  # before -> after names (λ default; λ = 1 no longer ships)


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    p.add_argument("--results", type=Path, default=ROOT / "results")
    p.add_argument("--before", type=Path, default=ROOT / "docs" / "issue-13-before.json")
    p.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    args = p.parse_args()
    before = json.loads(args.before.read_text()) if args.before.is_file() else {}
    for ds in args.datasets:
        fd = fd_table(classifier_rows(args.results, ds))
        old = before.get(ds, {})
        old_models = {RENAMED.get(k, k): v for k, v in old.get("models", {}).items()}
        print(f"\n#### {ds}\n")
        print(f"Test images' nearest-training-image median: {old.get('nn_median_test', float('nan')):.2f} before (2,000 "
              f"searched) · now in each row's reference.\n")
        print("| model | sampler | class entropy before → after | smallest class | nearest-train median (test) "
              "before → after | FD (classifier) before → after |")
        print("|---|---|---|---|---|---|")
        for name, path in list_models(args.checkpoints, ds).items():
            modes = {**(read_metadata(path)["meta"].get("metrics", {}).get("sampler_modes") or {}), **sidecar_modes(path)}
            for s in sorted(modes, key=lambda k: ORDER.index(k) if k in ORDER else 99):
                q, b = modes[s], old_models.get(name, {}).get(s, {})
                print(f"| {name} | {s} | {fmt(b.get('class_entropy'), '.3f')} → **{q['class_entropy']:.3f}** | "
                      f"{fmt(b.get('min_class_share'), '.1%')} → {q['min_class_share']:.1%} | "
                      f"{fmt(b.get('nn_median'), '.1f')} → **{q.get('nn_median', float('nan')):.1f}** "
                      f"({q.get('nn_median_test', float('nan')):.1f}) | "
                      f"{fmt(b.get('fd_classifier_n10000'), '.1f')} → **{fmt(fd.get((name, s)), '.1f')}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
