"""EnsemblePolicy: K policies acting as one (mean arm command, majority gripper), members that read
different inputs refused. ROS-free, fast."""

import numpy as np
import pytest

from chef_policy.runner import EnsemblePolicy, PolicyError


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
