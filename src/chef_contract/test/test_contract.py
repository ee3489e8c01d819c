import json
import math

import numpy as np
import pytest

from chef_contract import action, events, obs, spec, topics
from chef_contract.config import ConfigError, field_, from_dict, load_config, to_dict
from dataclasses import dataclass, field


def test_state_only_vector_is_292_floats():
    assert spec.state_size() == 292


def test_workspace_bounds_match_spec():
    np.testing.assert_allclose(spec.WORKSPACE_LOW_M, (0.475, -0.125, 0.0698), atol=1e-9)
    np.testing.assert_allclose(spec.WORKSPACE_HIGH_M, (0.725, 0.125, 0.2698), atol=1e-9)


def test_focal_length_at_128px():
    assert round(spec.CAMERAS['basket_front_left'].focal_length_px(128)) == 203
    assert round(spec.CAMERAS['basket_back_left'].focal_length_px(128)) == 239


def test_action_round_trip_and_nan_rejection():
    a = np.array([0.5, -1.0, 0.25, -0.3, 0.7], np.float32)
    lin, yaw, grip = action.to_command(a)
    assert math.isclose(lin[0], 0.035, abs_tol=1e-7) and math.isclose(yaw, -0.3, abs_tol=1e-6)
    assert grip == spec.GRIPPER_CLOSED_POSITION_RAD
    back = action.from_command(lin, yaw, grip)
    np.testing.assert_allclose(back[:4], a[:4], atol=1e-6)
    assert back[4] == 1.0
    with pytest.raises(action.InvalidAction):
        action.to_command([0, float('nan'), 0, 0, 0])
    with pytest.raises(action.InvalidAction):
        action.to_command([0, 0, 0, 0])


def test_linear_velocity_scaled_by_norm_not_clipped():
    v = action.scale_linear_by_norm([0.07, 0.07, 0.0])
    assert math.isclose(np.linalg.norm(v), 0.07)
    assert math.isclose(v[0], v[1])


def test_frame_stacker_pads_with_first_frame_and_puts_newest_first():
    st = obs.FrameStacker(['gripper/grasp', 'sawyer/joints/angle', 'action/environment'])
    f0 = {'gripper/grasp': 1.0, 'sawyer/joints/angle': np.arange(7), 'action/environment': np.zeros(8),
          'basket_front_left/pixels': np.zeros((4, 4, 3), np.uint8)}
    o0 = st.push(f0)
    assert o0['gripper/grasp'].shape == (3,) and np.all(o0['gripper/grasp'] == 1)
    assert o0['action/environment'].shape == (2, 8)
    f1 = dict(f0, **{'gripper/grasp': 2.0, 'sawyer/joints/angle': np.arange(7) + 10})
    o1 = st.push(f1)
    assert o1['gripper/grasp'].tolist() == [2, 1, 1]
    assert o1['sawyer/joints/angle'][0, 0] == 10 and o1['sawyer/joints/angle'][1, 0] == 0
    # outputs never alias each other or the buffer
    o1['gripper/grasp'][:] = 99
    assert st.push(f1)['gripper/grasp'].tolist() == [2, 2, 1]
    assert o1['basket_front_left/pixels'] is not f0['basket_front_left/pixels']


def test_events_round_trip_and_reject_unknown_keys():
    e = events.EpisodeEvent('end', 'abc', 'cell0', 'sim', 'rgb_test_triplet1', 3, 10, steps=400,
                            success=True, returns={'staged': 1.5}, tags={'stage': 'collect'})
    assert events.EpisodeEvent.from_json(e.to_json()) == e
    bad = json.loads(e.to_json())
    bad['sucess'] = True
    with pytest.raises(events.EventFormatError):
        events.EpisodeEvent.from_json(json.dumps(bad))
    with pytest.raises(events.EventFormatError):
        events.EpisodeCommand(op='launch')


def test_topic_lookup_is_strict():
    assert topics.topic(topics.TWIST_CMD).msg_type == 'geometry_msgs/msg/TwistStamped'
    with pytest.raises(KeyError, match='did you mean|Did you mean'):
        topics.topic('joint_state')
    assert topics.is_contract_topic('/cell3/joint_states')
    assert not topics.is_contract_topic('/cell3/joint_statez')


@dataclass
class _Inner:
    lr: float = field_(3e-4, help='learning rate', min=0.0)


@dataclass
class _Outer:
    name: str = 'x'
    inner: _Inner = field(default_factory=_Inner)
    mode: str = field_('a', choices=('a', 'b'))


def test_config_unknown_key_suggests_nearest(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        from_dict(_Outer, {'inner': {'lrr': 1}})
    with pytest.raises(ConfigError, match='below the minimum'):
        from_dict(_Outer, {'inner': {'lr': -1}})
    with pytest.raises(ConfigError, match='not one of'):
        from_dict(_Outer, {'mode': 'c'})
    p = tmp_path / 'c.yaml'
    p.write_text('inner: {lr: 0.1}\n')
    cfg = load_config(_Outer, p, overrides=['mode=b'])
    assert cfg.inner.lr == 0.1 and cfg.mode == 'b'
    assert from_dict(_Outer, to_dict(cfg)) == cfg


def test_config_floats_in_scientific_notation_without_a_dot(tmp_path):
    """YAML 1.1 reads 1e-4 as a string: a float field takes it (file and --set), other text stays an error."""
    p = tmp_path / 'c.yaml'
    p.write_text('inner: {lr: 1e-4}\n')
    assert load_config(_Outer, p).inner.lr == 1e-4
    assert load_config(_Outer, overrides=['inner.lr=3E-5']).inner.lr == 3e-5
    assert load_config(_Outer, overrides=['inner.lr=2.5e+1']).inner.lr == 25.0
    for bad in ('nan', 'inf', 'fast', '1e'):
        with pytest.raises(ConfigError, match='expected a number'):
            load_config(_Outer, overrides=[f'inner.lr={bad}'])


def test_every_qos_class_matches_its_own_publishers():
    """A contract subscriber must match a contract publisher (e.g. deadlines: offered <= requested)."""
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    from chef_contract.ros import qos
    from chef_contract.topics import QOS_CLASSES
    for cls in QOS_CLASSES:
        compat, why = qos_check_compatible(qos(cls, 'pub'), qos(cls, 'sub'))
        assert compat != QoSCompatibility.ERROR, (cls, why)
