"""The recorder node over real DDS: every message type of the contract round-trips through a bag,
read back by our reader and by an independent decoder (mcap + mcap_ros2)."""

import time

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message

from chef_contract import topics as T
from chef_contract.ros import create_contract_publisher, msg_class, qos
from chef_contract.testing import LocalGraph
from chef_recorder.bagio import iter_messages, read_bag_metadata
from chef_recorder.catalog import Catalog
from chef_recorder.layout import mcap_file
from chef_recorder.metadata import from_custom_data
from chef_recorder.recorder_node import RecorderNode
from chef_recorder.synthetic import PERIOD_NS, CellPublisher

CAMS = ('basket_front_left', 'basket_back_left')


@pytest.fixture
def graph(tmp_path):
    g = LocalGraph()
    yield g
    g.close()


def wait_for(cond, timeout=15.0, what=''):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.02)


def fields_equal(a, b, path=''):
    """Recursive comparison of an rclpy message with any decoded object of the same type."""
    if hasattr(a, 'get_fields_and_field_types'):
        for name in a.get_fields_and_field_types():
            fields_equal(getattr(a, name), getattr(b, name), f'{path}.{name}')
    elif isinstance(a, (list, tuple)) and a and hasattr(a[0], 'get_fields_and_field_types'):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            fields_equal(x, y, f'{path}[{i}]')
    elif isinstance(a, str):
        assert a == b, path
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=path)


def test_every_message_type_round_trips_through_the_recorder(graph, tmp_path):
    data = tmp_path / 'data'
    rec = graph(RecorderNode(context=graph.ctx, namespace='cell0', parameter_overrides=[
        Parameter('data_dir', value=str(data)), Parameter('topics', value=['*', '/clock']),
        Parameter('cameras', value=list(CAMS)), Parameter('close_timeout_s', value=1.0),
        Parameter('fsync', value=False)]))
    pub_node = graph(rclpy.create_node('cell', namespace='cell0', context=graph.ctx))
    sent = []                                       # (contract name, message) in publish order

    def sink(name, msg):
        sent.append((name, msg))
        cell.pubs[name].publish(msg)

    cell = CellPublisher(pub_node, CAMS, image_px=16)
    extra = {n: create_contract_publisher(pub_node, n) for n in
             (T.ESTOP, T.SAFETY_STATUS, T.EPISODE_COMMAND, T.CHECKPOINT_ANNOUNCE, T.CLOCK)}
    cell.pubs.update(extra)
    cell.sink = sink
    graph.start()
    wait_for(lambda: all(p.get_subscription_count() > 0 for p in cell.pubs.values()) and
             all(rec.count_publishers(s.full) > 0 for s in rec._subs), what='matching both ways')
    time.sleep(0.5)
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Bool, String

    from chef_contract.ros import ns_to_stamp
    cell.policy_info('pol-dds', 'ef' * 32)
    t = 5_000 * 10**9
    for e in range(3):
        eid = f'dds{e}'
        cell.event('start', eid, e, t)
        for k in range(5):
            st = t + k * PERIOD_NS
            cell.observation(e, k, st)
            if k < 4:
                cell.command(e, k, st)
            if k == 1:
                sink(T.ESTOP, Bool(data=bool(e % 2)))
                sink(T.SAFETY_STATUS, String(data='{"state": "ok"}'))
                sink(T.EPISODE_COMMAND, String(data='{"op": "start"}'))
                sink(T.CHECKPOINT_ANNOUNCE, String(data='{"path": "x"}'))
                sink(T.CLOCK, Clock(clock=ns_to_stamp(st)))
            time.sleep(0.01)
        cell.event('end', eid, e, t + 4 * PERIOD_NS, steps=4, success=True,
                   returns={'staged': 1.5})
        t += 10 * PERIOD_NS
    wait_for(lambda: len(rec.engine.published) == 3, what='3 published bags')
    rec.engine.flush()

    cat = Catalog(data)
    assert len(cat) == 3
    by_id = {r['id']: r for r in cat.rows()}
    assert sorted(by_id) == ['dds0', 'dds1', 'dds2']
    received = {}
    for bag in sorted(rec.engine.published):
        tf_static = [m for m in iter_messages(bag) if m.topic == f'/cell0/{T.TF_STATIC}']
        assert len(tf_static) == 1              # written by the recorder (rclpy has no tf2_msgs here)
        for m in iter_messages(bag):
            if m.topic != tf_static[0].topic:
                received.setdefault(m.topic, []).append(deserialize_message(bytes(m.raw), msg_class(m.msgtype)))
        meta = from_custom_data(read_bag_metadata(bag)['custom_data'])
        assert meta['policy_id'] == 'pol-dds' and meta['returns'] == {'staged': 1.5}
        assert meta['dropped_messages'] == 0 and meta['incomplete_ticks'] == 0 and meta['complete']
        assert meta['code_revision'] and meta['clock'] == 'sim'
        assert meta['latency_ms_p50'] is None
    expected = {}
    for name, msg in sent:
        full = name if name.startswith('/') else f'/cell0/{name}'
        expected.setdefault(full, []).append(msg)
    types = {type(m).__name__ for _, m in sent}
    assert types >= {'Image', 'CameraInfo', 'JointState', 'WrenchStamped', 'PoseStamped', 'TwistStamped',
                     'PoseArray', 'Float64MultiArray', 'String', 'Bool', 'Clock'}
    # policy/info (latched) is repeated into every bag; everything else exactly once, in order
    for topic, msgs in expected.items():
        got = received.get(topic, [])
        if topic.endswith(T.POLICY_INFO):
            assert got and all(g == msgs[0] for g in got)
            continue
        assert got == msgs, topic

    # independent decoder: mcap + mcap_ros2 read every message of every bag
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    for bag in sorted(rec.engine.published):
        info = read_bag_metadata(bag)
        counts = {t['topic_metadata']['name']: t['message_count'] for t in info['topics_with_message_count']}
        seen = {}
        with open(mcap_file(bag), 'rb') as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            assert reader.get_header().profile == 'ros2'
            assert any(r.name == 'rosbag2' for r in reader.iter_metadata())
            for schema, channel, message, decoded in reader.iter_decoded_messages():
                assert schema.encoding == 'ros2msg' and channel.message_encoding == 'cdr'
                seen[channel.topic] = seen.get(channel.topic, 0) + 1
                if channel.topic == '/cell0/joint_states':
                    original = expected[channel.topic][int(round(decoded.position[1])) * 5
                                                       + int(round(decoded.position[0]))]
                    fields_equal(original, decoded)
                if channel.topic.endswith('image_raw'):
                    assert len(decoded.data) == 16 * 16 * 3 and decoded.encoding == 'rgb8'
        assert seen == counts
        assert sum(counts.values()) == info['message_count']


def test_recorder_status_says_ready_once_matched_on_every_required_topic(graph, tmp_path):
    """recorder/status (latched JSON), what a lockstep sim cell waits for before an episode starts:
    not ready while a required topic (here the policy's twist) has no publisher, ready once it has."""
    import json

    from std_msgs.msg import String
    rec = graph(RecorderNode(context=graph.ctx, namespace='cell0', parameter_overrides=[
        Parameter('data_dir', value=str(tmp_path / 'data')), Parameter('cameras', value=['none']),
        Parameter('fsync', value=False)]))
    cell = graph(rclpy.create_node('cell', namespace='cell0', context=graph.ctx))
    got = []
    cell.create_subscription(String, T.RECORDER_STATUS, lambda m: got.append(json.loads(m.data)),
                             qos('latched', 'sub'))
    pubs = {n: create_contract_publisher(cell, n) for n in (T.JOINT_STATES, T.EPISODE_EVENTS, T.POLICY_GRIPPER,
                                                             T.TWIST_CMD, T.GRIPPER_CMD)}
    graph.start()
    wait_for(lambda: got and got[-1]['unmatched'] == {T.POLICY_TWIST: 'no publisher'}, what='not ready')
    assert got[-1]['ready'] is False and got[-1]['node'] == '/cell0/recorder'
    pubs[T.POLICY_TWIST] = create_contract_publisher(cell, T.POLICY_TWIST)
    wait_for(lambda: got[-1]['ready'], what='ready')
    assert got[-1]['unmatched'] == {} and all(p.get_subscription_count() == 1 for p in pubs.values())
    assert T.RECORDER_STATUS not in {s.name for s in rec._subs}      # its own status is not recorded


def test_unmatched_topics_counts_the_graphs_publishers():
    from chef_recorder.recorder_node import _Sub, unmatched_topics

    class Handle:
        def __init__(self, n):
            self.n = n

        def get_publisher_count(self):
            return self.n
    subs = []
    for name, matched in ((T.JOINT_STATES, 1), (T.POLICY_TWIST, 0), (T.WRENCH, 1), (T.POLICY_INFO, 0)):
        sub = _Sub(name, f'/cell0/{name}', 'x', False)
        sub.handle = Handle(matched)
        subs.append(sub)
    graph_counts = {f'/cell0/{T.JOINT_STATES}': 1, f'/cell0/{T.WRENCH}': 2}
    out = unmatched_topics(subs, lambda full: graph_counts.get(full, 0), {T.JOINT_STATES, T.POLICY_TWIST})
    assert out == {T.POLICY_TWIST: 'no publisher', T.WRENCH: '1 of 2 publishers matched'}


@pytest.mark.parametrize('images', [True, False])
def test_state_only_sim_cells_neither_render_nor_record_cameras(images):
    """config/graphs/sim.yaml images:=false: the bridge renders no camera and the recorder (whose
    recorder.yaml lists all three) subscribes to no camera topic, so no tick waits for an image."""
    from pathlib import Path

    import yaml

    from chef_contract.graph import load_graph
    from chef_contract.spec import CAMERA_NAMES
    from chef_recorder.recorder_node import Params, selected_topics
    ws = Path(__file__).resolve().parents[3]
    specs = {s.name: s for s in load_graph(ws / 'config' / 'graphs' / 'sim.yaml').resolve({'images': images})}

    def params(spec):
        merged = {}
        for f in spec.parameter_files:
            merged.update(next(iter(yaml.safe_load(Path(f).read_text()).values()))['ros__parameters'])
        merged.update(spec.parameters)
        return merged

    assert params(specs['sim_bridge'])['render_images'] is images
    rec = params(specs['recorder'])
    assert rec['cameras'] == list(CAMERA_NAMES)
    cams = [n for n in selected_topics(Params(topics=rec['topics'], cameras=rec['cameras'], images=rec['images']))
            if 'camera/' in n]
    assert cams == ([] if not images else [t for c in CAMERA_NAMES
                                          for t in (T.image_topic(c), T.camera_info_topic(c))])
