"""The loop config's domain range and checkpoint keys: typed, validated in one line, overridable."""

import pytest

from chef_contract.config import ConfigError
from chef_loop.config import load_loop_config


def test_domain_range_and_checkpoint_every_are_config_keys(monkeypatch):
    monkeypatch.delenv('CHEF_DOMAIN_RANGE', raising=False)
    cfg = load_loop_config('default')
    assert cfg.cells.domain_range == '110-199'
    assert cfg.explore.checkpoint_every > 0 and cfg.finetune.checkpoint_every > 0
    cfg = load_loop_config('default', ['cells.domain_range=215-232', 'explore.checkpoint_every=50'])
    assert cfg.cells.domain_range == '215-232' and cfg.explore.checkpoint_every == 50


def test_bad_domain_range_fails_at_load_in_one_line(monkeypatch):
    monkeypatch.delenv('CHEF_DOMAIN_RANGE', raising=False)
    with pytest.raises(ConfigError, match=r"^cells.domain_range '90-300': need 0 <= LO <= HI <= 232"):
        load_loop_config('default', ['cells.domain_range=90-300'])
    monkeypatch.setenv('CHEF_DOMAIN_RANGE', 'ten-twenty')
    with pytest.raises(ConfigError, match=r"^CHEF_DOMAIN_RANGE 'ten-twenty': expected LO-HI"):
        load_loop_config('default')
