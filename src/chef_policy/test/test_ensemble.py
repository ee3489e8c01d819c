"""EnsemblePolicy: K policies acting as one (mean arm command, majority gripper), members that read
different inputs refused. ROS-free, fast."""

import numpy as np
import pytest

from chef_policy.ensemble import EnsemblePolicy
from chef_policy.runner import PolicyError


class Fixed:
    """A member that always answers `action`."""

    cameras = ()
    needs_objects = True
    n_intentions = 1

    def __init__(self, action, keys=('a', 'b'), name='m'):
        self.action = np.float32(action)
        self.stack_keys = keys
        self.policy_id = name
        self.resets = []

    def reset(self, seed):
        self.resets.append(seed)

    def act(self, obs, frame, intention, deterministic):
        return self.action.copy()

    def warmup(self, iterations):
        return 1.0


def test_arm_is_the_members_mean_and_the_gripper_their_majority():
    members = [Fixed([0.3, -0.6, 0.0, 0.9, 1.0]), Fixed([0.0, 0.0, 0.3, 0.0, -1.0]),
               Fixed([0.6, 0.0, 0.0, -0.3, 1.0])]
    ens = EnsemblePolicy(members)
    a = ens.act({}, {}, 0, True)
    assert a[:4] == pytest.approx([0.3, -0.2, 0.1, 0.2])
    assert a[4] == 1.0                                    # 2 of 3 close
    members[2].action[4] = -1.0
    assert ens.act({}, {}, 0, True)[4] == -1.0            # 2 of 3 open
    ens.reset(7)
    assert [m.resets for m in members] == [[7]] * 3       # every member gets the episode seed
    assert ens.stack_keys == ('a', 'b') and ens.warmup(1) == 3.0


def test_members_that_read_different_inputs_or_a_lone_member_are_refused():
    with pytest.raises(PolicyError, match='different inputs'):
        EnsemblePolicy([Fixed([0] * 5), Fixed([0] * 5, keys=('a',), name='other')])
    with pytest.raises(PolicyError, match='at least 2'):
        EnsemblePolicy([Fixed([0] * 5)])


def test_an_ensemble_manifest_loads_like_a_checkpoint_and_checks_every_sha(tmp_path):
    """write_ensemble + make_policy('<name>.ensemble.json'): the members' checkpoints act as one
    (the policy node's `policy` parameter takes the manifest like a checkpoint path, its
    checkpoint_sha256 the manifest's); a changed member, a wrong manifest sha or a malformed
    manifest is refused with one line."""
    import json

    import torch

    from chef_policy.checkpoint import CheckpointError, save_checkpoint
    from chef_policy.networks import MultiTaskActor, NetworkConfig, dummy_observation, obs_to_tensors
    from chef_policy.ensemble import write_ensemble
    from chef_policy.runner import make_policy
    cfg = NetworkConfig(obs_mode='state', state_feature_dim=16, actor_torso=(16,), critic_torso=(16,))
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        paths.append(tmp_path / 'ckpt' / f'm{seed}.pt')
        save_checkpoint(paths[-1], {'actor': MultiTaskActor(cfg)}, cfg)
    manifest = tmp_path / 'best.ensemble.json'
    sha = write_ensemble(manifest, paths)
    ens = make_policy(str(manifest), expected_sha256=sha)
    assert ens.kind == 'ensemble' and len(ens.members) == 3 and ens.policy_id == f'best@{sha[:12]}'
    obs = {k: v[0].numpy() for k, v in dummy_observation(cfg).items()}
    means = []
    for m in ens.members:
        with torch.no_grad():
            means.append(m.actor(obs_to_tensors(obs, cfg))[0][0, 0].numpy())
    a = ens.act(obs, {}, 0, True)
    assert a[:4] == pytest.approx(np.clip(np.mean(means, 0), -1, 1), abs=1e-5)
    assert json.loads(manifest.read_text())['members'][0]['path'] == 'ckpt/m0.pt'     # relative: moves with the run
    # what the policy node publishes on policy/info (PolicyInfo(**policy.info())), through JSON
    from chef_contract.payloads import PolicyInfo
    info = PolicyInfo.from_json(PolicyInfo(**ens.info()).to_json())
    assert info.ready and info.kind == 'ensemble' and info.checkpoint_sha256 == sha
    assert info.source == str(manifest) and len(info.config['members']) == 3
    with pytest.raises(PolicyError, match='sha256'):
        make_policy(str(manifest), expected_sha256='0' * 64)
    torch.manual_seed(9)
    save_checkpoint(paths[1], {'actor': MultiTaskActor(cfg)}, cfg)   # a member changed
    with pytest.raises(CheckpointError):
        make_policy(str(manifest))
    manifest.write_text('{"members": []}')
    with pytest.raises(PolicyError, match='manifest'):
        make_policy(str(manifest))
