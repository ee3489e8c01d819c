"""The pixel loop configs (config/chef/pixels_cpu.yaml, pixels.yaml): every key known, every network
the loop can train reads pixels + real-cell keys only, and `observation` is enforced at load."""

import pytest

from chef_contract.config import ConfigError
from chef_contract.spec import REAL_STATE_OBSERVATION_NAMES, STATE_OBSERVATIONS
from chef_loop.config import _network_variants, learner_config_path, load_loop_config
from chef_policy.networks import MultiTaskActor
from chef_trainer.config import load_learner_config

PRIVILEGED = next(k.name for k in STATE_OBSERVATIONS if not k.real)     # an object pose


@pytest.mark.parametrize('name', ['pixels_cpu', 'pixels'])
def test_pixel_loop_configs_load_and_no_actor_reads_a_privileged_key(name, monkeypatch):
    monkeypatch.delenv('CHEF_DOMAIN_RANGE', raising=False)
    cfg = load_loop_config(name)                 # unknown keys and bad values raise here
    assert cfg.observation == 'pixels' and cfg.collect.episodes == 0 and cfg.collect.scripted_episodes > 0
    assert cfg.cells.domain_range != load_loop_config('default').cells.domain_range
    assert cfg.explore.search_space == {'learner.algorithm': {'choice': ['bc', 'iql']}}
    assert cfg.explore.candidates == cfg.explore.trials == 2 and not cfg.explore.select_metric.startswith('fqe')
    assert cfg.finetune.learner_overrides == ['learner.algorithm="iql"']
    variants = _network_variants(cfg) + [('trial', list(cfg.explore.learner_overrides)
                                          + [f'learner.algorithm={a}'])
                                         for a in cfg.explore.search_space['learner.algorithm']['choice']]
    for what, overrides in variants:
        learner = load_learner_config(learner_config_path(cfg.explore.learner_config), overrides).learner
        net = learner.network
        assert net.obs_mode == 'pixels' and not net.privileged, what
        assert net.image_size == cfg.cells.image_size, what     # recorded = network input
        actor = MultiTaskActor(net)
        assert set(actor.encoder.state_keys) <= set(REAL_STATE_OBSERVATION_NAMES), what
        assert actor.encoder.image_keys, what


def test_observation_is_enforced_against_the_learners(monkeypatch):
    monkeypatch.delenv('CHEF_DOMAIN_RANGE', raising=False)
    with pytest.raises(ConfigError, match=r"observation: 'pixels' but explore.learner_config .* obs_mode 'state'"):
        load_loop_config('pixels_cpu', ['explore.learner_config=iql_state.yaml'])
    with pytest.raises(ConfigError, match=r"observation: 'state' but explore.learner_config .* obs_mode 'pixels'"):
        load_loop_config('pixels_cpu', ['observation=state'])
    keys = '[sawyer/joints/angle,' + PRIVILEGED + ']'
    with pytest.raises(ConfigError, match=r'reads privileged sim keys'):
        load_loop_config('pixels_cpu', [f'explore.learner_overrides=["learner.network.state_keys={keys}"]'])
    for metric in ('fqe_value', 'heldout_score'):
        with pytest.raises(ConfigError, match=r'off-policy evaluation scores state networks only'):
            load_loop_config('pixels_cpu', [f'explore.select_metric={metric}'])
    with pytest.raises(ConfigError, match=r'observation: pixels needs cells.images: true'):
        load_loop_config('pixels_cpu', ['cells.images=false'])
