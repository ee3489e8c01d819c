"""frame -> ROS messages -> frame is the identity (float32) for every benchmark key."""

import numpy as np
import pytest

from chef_contract import topics as T
from chef_contract.frames import FrameError, frame_to_messages, messages_to_frame
from chef_contract.spec import STATE_OBSERVATIONS, image_key


def random_frame(rng):
    f = {}
    for k in STATE_OBSERVATIONS:
        f[k.name] = rng.normal(size=k.raw_shape).astype(np.float32)
    for key in ('sawyer/pinch/pose', 'sawyer/tcp/pose') + tuple(
            f'rgb30_{c}/abs_pose' for c in ('red', 'green', 'blue')):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q)
        q = q if q[0] >= 0 else -q
        f[key][3:] = q
    for c in ('red', 'green', 'blue'):
        f[f'rgb30_{c}/to_pinch'] = f[f'rgb30_{c}/abs_pose'] - f['sawyer/pinch/pose']
    f['gripper/grasp'] = np.array([2.0], np.float32)
    f['action/environment'][7] = 255.0
    f[image_key('basket_front_left')] = rng.integers(0, 255, (8, 6, 3), dtype=np.uint8)
    return f


def test_round_trip_is_identity():
    f = random_frame(np.random.default_rng(0))
    msgs = frame_to_messages(f, 1_234_567_890_123, cameras=['basket_front_left'])
    assert set(msgs) >= {T.JOINT_STATES, T.WRENCH, T.OBJECT_POSES, T.image_topic('basket_front_left')}
    for m in msgs.values():
        assert m.header.stamp.sec == 1234 and m.header.stamp.nanosec == 567_890_123
    back = messages_to_frame(msgs, cameras=['basket_front_left'], require_objects=True)
    assert set(back) == set(f)
    for k in f:
        np.testing.assert_allclose(back[k], f[k], rtol=1e-5, atol=1e-4, err_msg=k)
    assert back[image_key('basket_front_left')].dtype == np.uint8


def test_missing_and_non_finite_inputs_are_named():
    f = random_frame(np.random.default_rng(1))
    msgs = frame_to_messages(f, 0)
    del msgs[T.WRENCH]
    with pytest.raises(FrameError, match='wrist/wrench'):
        messages_to_frame(msgs)
    msgs = frame_to_messages(f, 0)
    msgs[T.JOINT_STATES].position[2] = float('nan')
    with pytest.raises(FrameError, match='sawyer/joints/angle'):
        messages_to_frame(msgs)
    msgs = frame_to_messages(f, 0)
    msgs[T.JOINT_STATES].name = list(msgs[T.JOINT_STATES].name)[:-1]
    with pytest.raises(FrameError, match='finger_joint'):
        messages_to_frame(msgs)


def test_gripper_commands_carry_their_tick():
    from chef_contract.ros import gripper_command_msg, gripper_tick_stamp
    tagged = gripper_command_msg(0.8, 1_050_000_000)
    assert list(tagged.data) == [0.8] and gripper_tick_stamp(tagged) == 1_050_000_000
    assert gripper_tick_stamp(gripper_command_msg(0.0)) is None          # plain ros2_control command
    tagged.layout.dim[0].label = 'tick_stamp_ns=garbage'
    assert gripper_tick_stamp(tagged) is None
