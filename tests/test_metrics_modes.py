"""explorer.metrics.modes: class histograms, their entropy, nearest-training-image distances."""
import math

import numpy as np
import pytest
import torch

from explorer.metrics.modes import class_histogram, mode_stats, nearest_sq_distances, sample_quality


def test_uniform_shares_have_entropy_one_and_a_single_class_zero():
    u = mode_stats(np.full(10, 0.1))
    assert u["class_entropy"] == pytest.approx(1.0) and u["min_class_share"] == pytest.approx(0.1)
    assert u["classes_above_1pct"] == 10
    one = mode_stats(np.eye(10)[1])
    assert one["class_entropy"] == 0.0 and one["min_class_share"] == 0.0 and one["classes_above_1pct"] == 1


def test_entropy_matches_the_closed_form_for_two_equal_classes():
    # two classes at 1/2 each out of K = 10: H = log 2, normalised by log 10
    shares = np.zeros(10)
    shares[[3, 7]] = 0.5
    assert mode_stats(shares)["class_entropy"] == pytest.approx(math.log(2) / math.log(10))


def test_histogram_counts_labels_and_rejects_bad_ones():
    h = class_histogram(torch.tensor([0, 0, 1, 3]), 4)
    assert h.tolist() == [0.5, 0.25, 0.0, 0.25]
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        class_histogram(torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match="at least one"):
        class_histogram(torch.tensor([], dtype=torch.long), 4)
    with pytest.raises(ValueError, match="summing to 1"):
        mode_stats([0.5, 0.2])


def test_nearest_distances_equal_brute_force():
    g = torch.Generator().manual_seed(0)
    x, ref = torch.rand(37, 1, 6, 6, generator=g), torch.rand(53, 1, 6, 6, generator=g)
    brute = ((x.flatten(1)[:, None] - ref.flatten(1)[None]) ** 2).sum(-1).min(1).values
    got = nearest_sq_distances(x, ref, batch_size=10)
    assert torch.allclose(got, brute, atol=1e-4)
    assert nearest_sq_distances(ref[:5], ref).max() < 1e-4  # a training image is at distance 0 from itself
    with pytest.raises(ValueError, match="same size"):
        nearest_sq_distances(x, torch.rand(3, 1, 5, 5))


class _ByBrightness(torch.nn.Module):
    """A stand-in classifier: class = mean brightness bucket (10 buckets)."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        k = (x.flatten(1).mean(1) * 9.999).long()
        return torch.nn.functional.one_hot(k, 10).float() + self.p


def test_sample_quality_flags_copies_and_a_single_mode():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(200, 1, 4, 4, generator=g)
    copies = train[:50].clone()  # memorised: distance 0 to the training set
    q = sample_quality(copies, _ByBrightness(), train, 10, test_nn_median=2.0)
    assert q["nn_median"] < 1e-4 and q["nn_ratio"] < 1e-4
    constant = torch.full((50, 1, 4, 4), 0.55)  # every sample the same image: one class
    q = sample_quality(constant, _ByBrightness(), train, 10)
    assert q["class_entropy"] == 0.0 and q["classes_above_1pct"] == 1 and "nn_ratio" not in q
