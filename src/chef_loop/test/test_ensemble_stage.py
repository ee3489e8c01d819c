"""Ensemble candidates in the loop (`explore.ensemble`): the k best trials registered as one policy
through a manifest, fine-tuned member by member from their own weights, trained from scratch for
the compute baseline, and the one network the online learner starts from. ROS-free: real offline
training (tiny nets, few updates) on synthetic episodes in a real store."""

from pathlib import Path

import pytest
import torch

from chef_contract.config import ConfigError
from chef_loop.config import learner_config_path, load_loop_config
from chef_loop.explore import train_policy
from chef_loop.stages import ChefRun, primary_checkpoint
from chef_policy.checkpoint import load_checkpoint
from chef_policy.ensemble import EnsemblePolicy, load_ensemble
from loop_kill import TINY, record_synthetic_episodes

TINY_NET = ['learner.network.actor_torso=[32,32]', 'learner.network.critic_torso=[32,32]',
            'learner.network.state_feature_dim=32', 'learner.batch_size=32']


def _weights(checkpoint) -> torch.Tensor:
    """The actor's parameters, flattened (what the policy node runs)."""
    state, _, _ = load_checkpoint(checkpoint)
    return torch.cat([v.flatten().float() for v in state['modules']['actor'].values()])


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    runs = tmp_path_factory.mktemp('runs')
    cfg = load_loop_config(TINY, [f'runs_dir={runs}', 'explore.trials=2', 'explore.ensemble=2',
                                  'finetune.steps=20'])
    chef = ChefRun(cfg, log=lambda m: None, progress=False)
    assert record_synthetic_episodes(chef.data_dir, 0, 3, 30) == 3
    return chef


def test_ensemble_candidate_finetunes_each_member_from_its_own_weights(run, tmp_path):
    ids = [r.id for r in run.episodes()]
    base = str(learner_config_path(run.cfg.explore.learner_config))
    members = []
    for seed in (0, 1):          # two explore trials: the same learner, different seeds
        overrides = TINY_NET + [f'learner.seed={seed}']
        ckpt, _, _ = train_policy(base, overrides, str(run.data_dir), ids, 60, tmp_path / f'trial{seed}',
                                  progress=False, torch_threads=1)
        members.append({'checkpoint': ckpt, 'overrides': overrides})
    pid = run.add_ensemble('explore-0-ens2', members, tmp_path / 'ensemble', run.cfg.explore.learner_config,
                           stage='explore', iteration=0,
                           episodes=ids, metrics={'updates': 120})
    ens = run.state.policy(pid)
    assert ens['checkpoint'].endswith('.ensemble.json')
    policy = load_ensemble(ens['checkpoint'], ens['sha256'])          # what the policy node loads
    assert isinstance(policy, EnsemblePolicy) and len(policy.members) == 2
    assert primary_checkpoint(ens) == members[0]['checkpoint']        # the online learner's start

    run.train_like('finetune-0', pid, ids, tmp_path / 'finetune', from_parent=True, iteration=0)
    ft = run.state.policy('finetune-0')
    assert ft['parent'] == pid and ft['stage'] == 'finetune' and len(ft['config']['members']) == 2
    load_ensemble(ft['checkpoint'], ft['sha256'])
    parents = [_weights(m['checkpoint']) for m in members]
    for k, m in enumerate(ft['config']['members']):
        w = _weights(m['checkpoint'])
        assert not torch.equal(w, parents[k])                          # it trained
        # 20 updates from its own parent member: nearer to it than to the other member
        assert (w - parents[k]).norm() < 0.5 * (w - parents[1 - k]).norm()

    run.train_like('scratch-0', pid, ids, tmp_path / 'scratch', from_parent=False, iteration=0)
    sc = run.state.policy('scratch-0')
    assert sc['parent'] is None and sc['stage'] == 'finetune_scratch' and len(sc['config']['members']) == 2
    # from fresh weights: exactly what 20 updates of the member's learner from scratch give
    for k, (m, f) in enumerate(zip(sc['config']['members'], ft['config']['members'])):
        fresh, _, _ = train_policy(base, m['overrides'], str(run.data_dir), ids, 20, tmp_path / f'fresh{k}',
                                   progress=False, torch_threads=1)
        assert torch.equal(_weights(m['checkpoint']), _weights(fresh))
        assert not torch.equal(_weights(f['checkpoint']), _weights(fresh))


def test_ensemble_config_is_checked(tmp_path):
    for sets, needle in ((['explore.ensemble=1'], 'explore.ensemble'),
                         (['explore.trials=2', 'explore.ensemble=3'], 'explore.ensemble'),
                         (['explore.ensemble=2', 'explore.search_space={"learner.network.use_wrench": '
                           '{"choice": [true, false]}}'], 'same inputs')):
        with pytest.raises(ConfigError, match=needle):
            load_loop_config(TINY, [f'runs_dir={tmp_path}'] + sets)
    assert Path(TINY).is_file()
