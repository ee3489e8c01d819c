"""Test-wide settings: one torch thread.

CI and the developers share 2 cores with other test processes; with 2 intra-op threads a small
update is >10x slower under that contention (measured: 39 ms vs 630 ms), with 1 thread it is not.
Set CHEF_TEST_TORCH_THREADS to change it.
"""

import os

import torch

torch.set_num_threads(int(os.environ.get('CHEF_TEST_TORCH_THREADS', '1')))
