"""Typed String payloads (policy/step_info, trainer/checkpoint, recorder/status) and the one list of
per-tick topics: round trips, strict reading, and the sets every module takes from topics.py."""

import json

import pytest

from chef_contract import spec, topics as T
from chef_contract.events import EventFormatError
from chef_contract.payloads import CheckpointAnnouncement, PolicyInfo, RecorderStatus, StepInfo


def test_step_info_round_trips_and_names_its_intention():
    info = StepInfo.acted_on(1_050_000_000, 3, 1, [0.1, -0.2, 0.3, 0.0, 1.0], 2.34567, 4.5, 'ep', 'pol', 'abc')
    back = StepInfo.from_json(info.to_json())
    assert back == info and back.acted and back.intention_name == spec.INTENTIONS[1]
    zero = StepInfo.zero(7, 'not_ready', '', 'none')
    assert not zero.acted and StepInfo.from_json(zero.to_json()).zero_reason == 'not_ready'
    # what policy_node sent before the typed payload, and a writer that named the intention
    old = {'stamp_ns': 5, 'tick': None, 'episode_id': '', 'intention': None, 'action': None,
           'zero_reason': 'bad_action', 'policy_id': 'p'}
    assert StepInfo.from_json(json.dumps(old)).stamp_ns == 5
    named = StepInfo.from_json(json.dumps({'stamp_ns': 5, 'intention': spec.INTENTIONS[2]}))
    assert named.intention == 2


@pytest.mark.parametrize('payload, match', [
    ({'stamp_ns': 1, 'surprise': 1}, 'unknown keys'),
    ({'tick': 1}, 'stamp_ns'),
    ({'stamp_ns': 'soon'}, 'stamp_ns must be an integer'),
    ({'stamp_ns': 1, 'action': [0.0] * 4}, 'action must be 5 numbers'),
    ({'stamp_ns': 1, 'intention': 99}, 'intention 99 outside'),
    ({'stamp_ns': 1, 'intention': 'dance'}, 'unknown intention'),
    ([1, 2], 'expected a JSON object'),
])
def test_step_info_rejects_bad_payloads(payload, match):
    with pytest.raises(EventFormatError, match=match):
        StepInfo.from_json(json.dumps(payload))


def test_checkpoint_announcement_and_recorder_status_round_trip():
    a = CheckpointAnnouncement(path='/tmp/a.pt', sha256='ff', step=10, algorithm='crr')
    assert CheckpointAnnouncement.from_json(a.to_json()) == a
    assert CheckpointAnnouncement.from_json('{"path": "/x.pt", "sha256": ""}').step == 0
    with pytest.raises(EventFormatError):
        CheckpointAnnouncement.from_json('{"sha256": "ff"}')
    s = RecorderStatus(ready=False, unmatched={T.POLICY_TWIST: 'no publisher'}, pid=3, node='/cell0/recorder')
    assert RecorderStatus.from_json(s.to_json()) == s
    with pytest.raises(EventFormatError, match='ready must be'):
        RecorderStatus.from_json('{"ready": "yes"}')


def test_policy_info_says_ready_only_with_a_loaded_policy():
    info = PolicyInfo(policy_id='crr-t1', checkpoint_sha256='ab', kind='network', config={'hidden': [128]},
                      timing='lockstep', swaps=1)
    assert PolicyInfo.from_json(info.to_json()) == info and info.ready
    assert not PolicyInfo(policy_id='none').ready
    assert not PolicyInfo(policy_id='crr-t1', load_error='FileNotFoundError: x').ready
    with pytest.raises(EventFormatError, match='unknown keys'):
        PolicyInfo.from_json('{"policy_id": "p", "mood": "good"}')


def test_per_tick_topic_sets_come_from_one_table():
    per_tick = set(T.PER_TICK_TOPICS)
    assert set(T.tick_topics(spec.CAMERA_NAMES)) == per_tick        # the sim bridge publishes all of them
    assert set(T.STATE_TOPICS) | {T.OBJECT_POSES, T.REWARD_TERMS} <= per_tick
    assert set(T.DRIVER_STATE_TOPICS) | set(T.DERIVED_STATE_TOPICS) == set(T.STATE_TOPICS)
    assert not set(T.DRIVER_STATE_TOPICS) & set(T.DERIVED_STATE_TOPICS)
    cam = spec.CAMERA_NAMES[0]
    assert T.observation_topics([cam], objects=True) == (T.image_topic(cam),) + T.STATE_TOPICS + (T.OBJECT_POSES,)
    assert T.observation_topics() == T.STATE_TOPICS
    assert all(T.topic(n).per_tick for n in T.tick_topics([cam]))
