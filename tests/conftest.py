"""Shared test settings: small thread pool so tests behave on a 2-core machine."""

import torch

torch.set_num_threads(2)
