"""Checkpoints: exact round trip with trainer resume state, sha256 identity, strangers refused."""

import os
import pickle
import random
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from chef_policy.checkpoint import (
    CheckpointError, build_policy_from_checkpoint, file_sha256, load_checkpoint, save_checkpoint,
)
from chef_policy.networks import (
    MultiTaskActor, MultiTaskCritic, NetworkConfig, dummy_observation,
)

CFG = NetworkConfig(obs_mode='state', state_feature_dim=32, actor_torso=(32,), critic_torso=(32,))


class Payload:
    """Pickles to a call that creates `marker` when unpickled (what a hostile file would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_round_trip_with_resume_state(tmp_path):
    torch.manual_seed(0)
    actor, critic = MultiTaskActor(CFG), MultiTaskCritic(CFG)
    opt = torch.optim.Adam(list(actor.parameters()) + list(critic.parameters()), lr=1e-3)
    obs = dummy_observation(CFG, 2)
    loss = critic(obs, torch.zeros(2, 5)).sum() - actor.log_prob(obs, torch.zeros(2, 5)).sum()
    loss.backward()
    opt.step()
    extra = {'step': 123, 'optimizer': opt.state_dict(), 'torch_rng': torch.get_rng_state(),
             'numpy_rng': np.random.default_rng(5).bit_generator.state,
             'python_rng': random.Random(3).getstate(), 'note': None}
    path = tmp_path / 'ckpt' / 'actor.pt'
    sha = save_checkpoint(path, {'actor': actor, 'critic': critic.state_dict()}, CFG, extra)
    assert sha == file_sha256(path) and len(sha) == 64
    assert not [p for p in path.parent.iterdir() if p.name.endswith('.tmp')]
    state, cfg, sha2 = load_checkpoint(path)
    assert sha2 == sha and cfg == CFG
    assert state['extra']['step'] == 123
    assert torch.equal(state['extra']['torch_rng'], extra['torch_rng'])
    rng = np.random.default_rng()
    rng.bit_generator.state = state['extra']['numpy_rng']
    assert rng.integers(1 << 30) == np.random.default_rng(5).integers(1 << 30)
    assert random.Random(0).setstate(tuple(
        tuple(x) if isinstance(x, list) else x for x in state['extra']['python_rng'])) is None
    opt2 = torch.optim.Adam(list(actor.parameters()) + list(critic.parameters()), lr=1e-3)
    opt2.load_state_dict(state['extra']['optimizer'])
    critic2 = MultiTaskCritic(CFG)
    critic2.load_state_dict(state['modules']['critic'])
    assert torch.equal(critic2(obs, torch.ones(2, 5)), critic(obs, torch.ones(2, 5)))
    policy, cfg3, sha3 = build_policy_from_checkpoint(path, expected_sha256=sha)
    assert sha3 == sha and not policy.training
    for a, b in zip(policy(obs), actor(obs)):
        assert torch.equal(a, b)


def test_identity_changes_with_the_weights(tmp_path):
    torch.manual_seed(0)
    a = save_checkpoint(tmp_path / 'a.pt', {'actor': MultiTaskActor(CFG)}, CFG)
    b = save_checkpoint(tmp_path / 'b.pt', {'actor': MultiTaskActor(CFG)}, CFG)
    assert a != b
    with pytest.raises(CheckpointError, match='does not match'):
        load_checkpoint(tmp_path / 'a.pt', expected_sha256=b)


def test_hostile_pickle_cannot_execute_code(tmp_path):
    marker = tmp_path / 'pwned'
    # 1) a torch.save archive with a code-executing object inside a valid-looking checkpoint
    evil_zip = tmp_path / 'evil.pt'
    good = MultiTaskActor(CFG).state_dict()
    torch.save({'format': 'chef_policy.checkpoint', 'version': 1, 'config': '{}',
                'modules': {'actor': good}, 'extra': {'x': Payload(marker)}, 'meta': {}}, evil_zip)
    # 2) a bare pickle stream
    evil_raw = tmp_path / 'evil.pkl'
    evil_raw.write_bytes(pickle.dumps(Payload(marker)))
    # the payloads are live: unsafe loading (in a child process) does run them
    code = f'import torch; torch.load({str(evil_zip)!r}, weights_only=False)'
    subprocess.run([sys.executable, '-c', code], check=False, capture_output=True, timeout=60)
    assert marker.exists()
    marker.unlink()
    for path in (evil_zip, evil_raw):
        with pytest.raises(CheckpointError, match='refused'):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            build_policy_from_checkpoint(path)
    assert not marker.exists()


def test_malformed_checkpoints_are_refused(tmp_path):
    good = tmp_path / 'good.pt'
    save_checkpoint(good, {'actor': MultiTaskActor(CFG)}, CFG)
    # truncated
    trunc = tmp_path / 'trunc.pt'
    trunc.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match='refused'):
        load_checkpoint(trunc)
    (tmp_path / 'empty.pt').write_bytes(b'')
    with pytest.raises(CheckpointError, match='empty'):
        load_checkpoint(tmp_path / 'empty.pt')
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(tmp_path / 'missing.pt')
    # foreign but safe content
    cases = {
        'plain_state_dict': MultiTaskActor(CFG).state_dict(),
        'wrong_format': {'format': 'x', 'version': 1, 'config': '{}', 'modules': {}, 'extra': {},
                         'meta': {}},
        'unknown_config_key': {'format': 'chef_policy.checkpoint', 'version': 1,
                               'config': '{"obs_mod": "state"}', 'modules': {'actor': {}},
                               'extra': {}, 'meta': {}},
        'module_not_tensors': {'format': 'chef_policy.checkpoint', 'version': 1, 'config': '{}',
                               'modules': {'actor': {'w': 'text'}}, 'extra': {}, 'meta': {}},
        'future_version': {'format': 'chef_policy.checkpoint', 'version': 2, 'config': '{}',
                           'modules': {'actor': {}}, 'extra': {}, 'meta': {}},
    }
    for name, payload in cases.items():
        p = tmp_path / f'{name}.pt'
        torch.save(payload, p)
        with pytest.raises(CheckpointError):
            load_checkpoint(p)
    # weights that do not fit the config, NaN weights
    other = NetworkConfig(obs_mode='state', state_feature_dim=64, actor_torso=(32,))
    p = tmp_path / 'mismatch.pt'
    save_checkpoint(p, {'actor': MultiTaskActor(other).state_dict()}, CFG)
    with pytest.raises(CheckpointError, match='do not fit'):
        build_policy_from_checkpoint(p)
    actor = MultiTaskActor(CFG)
    with torch.no_grad():
        actor.torso[0].weight[0, 0] = float('nan')
    save_checkpoint(tmp_path / 'nan.pt', {'actor': actor}, CFG)
    with pytest.raises(CheckpointError, match='NaN'):
        build_policy_from_checkpoint(tmp_path / 'nan.pt')
    with pytest.raises(CheckpointError, match='no .critic'):
        build_policy_from_checkpoint(good, module='critic')
    assert zipfile.is_zipfile(good)


def test_save_rejects_values_that_would_not_load(tmp_path):
    with pytest.raises(CheckpointError, match='ndarray'):
        save_checkpoint(tmp_path / 'x.pt', {'actor': MultiTaskActor(CFG)}, CFG,
                        {'buffer': np.zeros(3)})
    with pytest.raises(CheckpointError, match='NetworkConfig'):
        save_checkpoint(tmp_path / 'x.pt', {'actor': MultiTaskActor(CFG)}, {'obs_mode': 'state'})
    assert not (tmp_path / 'x.pt').exists()


def test_command_line_summary(tmp_path, capsys):
    from chef_policy.checkpoint import main
    sha = save_checkpoint(tmp_path / 'a.pt', {'actor': MultiTaskActor(CFG)}, CFG, {'step': 3})
    (tmp_path / 'bad.pt').write_bytes(b'not a checkpoint')
    assert main([str(tmp_path / 'a.pt')]) == 0
    out = capsys.readouterr().out
    assert sha in out and '"step"' in out and '"obs_mode": "state"' in out
    assert main([str(tmp_path / 'bad.pt')]) == 1
