import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def batch():
    """A fixed batch of 8 MNIST-shaped images in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(8, 1, 28, 28, generator=g)
