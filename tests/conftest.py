"""Shared fixtures and markers. GPU tests are skipped with one reason, defined here."""

import pytest
import torch

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
