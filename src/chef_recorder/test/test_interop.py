"""Bags the ROS world can use both ways (issue 14): any rosbag2 bag in - rosbag2's own test resources
and equivalent bags written here in each shape (empty type, old-style name, service events, unknown
type, split files, sqlite3, metadata v4-v9) read with exact counts; CHEF bags out that `ros2 bag play`
replays into a CHEF graph: every recorded topic's offered QoS is compatible with its subscribers'
(rclpy's own check), channels carry type hashes, the distro is real."""

import os
import warnings
from pathlib import Path

import pytest
import yaml

from chef_recorder.bagio import (
    ROS_DISTRO, SkippedTopicWarning, deserialize, iter_messages, read_bag_metadata, typestore,
)
from chef_recorder.integrity import verify_bag
from conftest import Stream, feed


def _shared_data() -> Path:
    here = Path(__file__).resolve()
    for cand in (os.environ.get('CHEF_SHARED_DATA', ''), here.parents[3].parent / 'shared' / 'data',
                 '/work/shared/data'):
        if cand and Path(cand).is_dir():
            return Path(cand)
    return Path('/nonexistent')


SHARED = _shared_data()
RESOURCE_BAGS = {    # bag -> (storage, metadata version, {topic: messages})
    'rosbag2_talker': ('mcap', 4, {'/topic': 10, '/rosout': 10}),
    'rosbag2_resources/sqlite3/talker': ('sqlite3', 4, {'/topic': 10, '/rosout': 10}),
    'rosbag2_resources/mcap/convert_a': ('mcap', 5, {'a_empty': 100, 'b_basictypes': 50}),
    'rosbag2_resources/mcap/test_bag_for_seek': ('mcap', 6, {'topic1': 5}),
    'rosbag2_resources/mcap/cdr_test': ('mcap', 7, {'/array_topic': 4, '/test_topic': 3}),
    'rosbag2_resources/sqlite3/cdr_test': ('sqlite3', 7, {'/array_topic': 4, '/test_topic': 3}),
    'rosbag2_resources/mcap/bag_with_topics_and_service_events': (
        'mcap', 8, {'/test_service1/_service_event': 4, '/test_service2/_service_event': 4,
                    '/test_topic1': 1, '/test_topic2': 1}),
}


def _read_all(bag):
    counts, skipped = {}, {}
    for m in iter_messages(bag, skipped=skipped):
        deserialize(m.raw, m.msgtype)
        counts[m.topic] = counts.get(m.topic, 0) + 1
    return counts, skipped


@pytest.mark.parametrize('name', sorted(RESOURCE_BAGS))
def test_every_rosbag2_resource_bag_reads_with_exact_counts(name):
    bag = SHARED / name
    if not bag.is_dir():
        pytest.skip(f'{bag} not present')
    storage, version, expected = RESOURCE_BAGS[name]
    info = read_bag_metadata(bag)
    assert (info['storage_identifier'], info['version']) == (storage, version)
    with warnings.catch_warnings():
        warnings.simplefilter('error', SkippedTopicWarning)       # every type here can be described
        counts, skipped = _read_all(bag)
    assert counts == expected and not skipped
    assert sum(counts.values()) == info['message_count']
    assert verify_bag(bag, deep=True) == []


def test_resource_service_events_decode_as_service_events():
    bag = SHARED / 'rosbag2_resources/mcap/bag_with_topics_and_service_events'
    if not bag.is_dir():
        pytest.skip(f'{bag} not present')
    events = [deserialize(m.raw, m.msgtype) for m in iter_messages(bag, ['/test_service1/_service_event'])]
    assert [(e.info.event_type, len(e.request), len(e.response)) for e in events] == \
        [(0, 1, 0), (3, 0, 1)] * 2                 # REQUEST_SENT with the request, RESPONSE_RECEIVED


# --- the same shapes, written here (no shared data needed) ---------------------------------------------
def _cdr_string(text: str) -> bytes:
    ts = typestore()
    return bytes(ts.serialize_cdr(ts.types['std_msgs/msg/String'](data=text), 'std_msgs/msg/String'))


def _write_mcap(path: Path, channels, version: int) -> None:
    """A one-file MCAP bag written with the `mcap` library (not rosbags): channels are
    (topic, type, schema encoding, schema text or None for no schema, [payloads])."""
    from mcap.writer import Writer
    path.mkdir(parents=True, exist_ok=True)
    f = path / f'{path.name}_0.mcap'
    topics, t = [], 1_000
    with open(f, 'wb') as fh:
        w = Writer(fh)
        w.start(profile='ros2', library='chef-test')
        for topic, msgtype, enc, text, payloads in channels:
            sid = 0 if text is None else w.register_schema(msgtype, enc, text.encode())
            cid = w.register_channel(topic, 'cdr', sid, {'offered_qos_profiles': ''})
            for p in payloads:
                w.add_message(cid, log_time=t, data=p, publish_time=t)
                t += 1_000
            topics.append({'topic_metadata': {'name': topic, 'type': msgtype, 'serialization_format': 'cdr',
                                              'offered_qos_profiles': ''}, 'message_count': len(payloads)})
        w.finish()
    _write_metadata(path, 'mcap', version, [f.name], topics)


def _write_metadata(path: Path, storage: str, version: int, files, topics) -> None:
    n = sum(t['message_count'] for t in topics)
    (path / 'metadata.yaml').write_text(yaml.safe_dump({'rosbag2_bagfile_information': {
        'version': version, 'storage_identifier': storage, 'relative_file_paths': list(files),
        'duration': {'nanoseconds': 0}, 'starting_time': {'nanoseconds_since_epoch': 0},
        'message_count': n, 'topics_with_message_count': topics}}))


def test_bags_of_every_shape_written_here_read_with_exact_counts(tmp_path):
    s = _cdr_string
    _write_mcap(tmp_path / 'empty', [('/e', 'chef_test/msg/Nothing', 'ros2msg', '', [b'\x00\x01\x00\x00\x00'] * 7),
                                     ('/s', 'std_msgs/msg/String', 'ros2msg', 'string data', [s('a')] * 3)], 5)
    _write_mcap(tmp_path / 'old_style', [('/o', 'chef_test/Text', 'ros2msg', 'string data', [s('x'), s('y')])], 6)
    srv = 'string question\n---\nstring answer\n'
    ts = typestore()
    from chef_recorder.bagio import describe_type
    describe_type('chef_test/srv/Ask_Event', srv)
    Event, Info = ts.types['chef_test/srv/Ask_Event'], ts.types['service_msgs/msg/ServiceEventInfo']
    Req, Time = ts.types['chef_test/srv/Ask_Request'], ts.types['builtin_interfaces/msg/Time']
    ev = bytes(ts.serialize_cdr(Event(info=Info(event_type=0, stamp=Time(sec=1, nanosec=2),
                                                client_gid=__import__('numpy').zeros(16, 'uint8'),
                                                sequence_number=1),
                                      request=[Req(question='why')], response=[]), 'chef_test/srv/Ask_Event'))
    _write_mcap(tmp_path / 'service', [('/ask/_service_event', 'chef_test/srv/Ask_Event', 'ros2msg', srv, [ev] * 4),
                                       ('/s', 'std_msgs/msg/String', 'ros2msg', 'string data', [s('b')])], 8)
    _write_mcap(tmp_path / 'unknown', [('/u', 'chef_test/msg/Unknown', '', None, [b'\x00\x01\x00\x00'] * 2),
                                       ('/bad', 'chef_test/msg/Bad', 'ros2msg', 'not a definition !!', [b'x']),
                                       ('/s', 'std_msgs/msg/String', 'ros2msg', 'string data', [s('c')] * 5)], 7)
    expected = {'empty': {'/e': 7, '/s': 3}, 'old_style': {'/o': 2}, 'service': {'/ask/_service_event': 4, '/s': 1}}
    for name, want in expected.items():
        assert _read_all(tmp_path / name) == (want, {}), name
        assert verify_bag(tmp_path / name, deep=True) == [], name
    types = {m.topic: m.msgtype for m in iter_messages(tmp_path / 'old_style')}
    assert types == {'/o': 'chef_test/msg/Text'}
    # a topic whose type nothing describes is skipped by name, never the whole bag
    with pytest.warns(SkippedTopicWarning, match=r'skipping topic /u \[chef_test/msg/Unknown\]'):
        counts, skipped = _read_all(tmp_path / 'unknown')
    assert counts == {'/s': 5} and sorted(skipped) == ['/bad', '/u']
    assert 'no definition' in skipped['/u'] and 'chef_test/msg/Bad' in skipped['/bad']


def test_split_and_sqlite3_bags_written_by_rosbags(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer
    ts = typestore()
    parts = []
    for k in range(2):                                   # two storage files of one bag (a split bag)
        d = tmp_path / f'part{k}'
        with Writer(d, version=8, storage_plugin=StoragePlugin.MCAP) as w:
            c = w.add_connection('/s', 'std_msgs/msg/String', typestore=ts)
            for i in range(3 + k):
                w.write(c, 10 * k + i, _cdr_string(f'{k}.{i}'))
        parts.append(next(d.glob('*.mcap')))
    split = tmp_path / 'split'
    split.mkdir()
    for p in parts:
        p.rename(split / p.name.replace('part', 'split_'))
    _write_metadata(split, 'mcap', 8, sorted(p.name for p in split.glob('*.mcap')),
                    [{'topic_metadata': {'name': '/s', 'type': 'std_msgs/msg/String',
                                         'serialization_format': 'cdr', 'offered_qos_profiles': ''},
                      'message_count': 7}])
    assert [deserialize(m.raw, m.msgtype).data for m in iter_messages(split)] == \
        ['0.0', '0.1', '0.2', '1.0', '1.1', '1.2', '1.3']
    assert verify_bag(split, deep=True) == []
    db = tmp_path / 'db'
    with Writer(db, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        c = w.add_connection('/s', 'std_msgs/msg/String', typestore=ts)
        for i in range(4):
            w.write(c, i, _cdr_string(str(i)))
    assert read_bag_metadata(db)['storage_identifier'] == 'sqlite3'
    assert _read_all(db) == ({'/s': 4}, {}) and verify_bag(db, deep=True) == []


# --- CHEF bags out: what `ros2 bag play` needs ------------------------------------------------------------
def _played_offer(recorded):
    """What rosbag2's player offers for a topic: the recorded offered profile with its default history
    (KEEP_LAST 10) when the recorded profiles agree (rosbag2_transport
    Rosbag2QoS::adapt_offer_to_recorded_offers), else its default profile (KEEP_LAST 10, reliable,
    volatile, no deadline)."""
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, LivelinessPolicy, QoSProfile, ReliabilityPolicy
    if not recorded:
        return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    q = recorded[0]
    names = {'reliability': ReliabilityPolicy, 'durability': DurabilityPolicy, 'liveliness': LivelinessPolicy}
    kw = {k: getattr(e, q[k].upper()) for k, e in names.items()}
    for k in ('deadline', 'lifespan', 'liveliness_lease_duration'):
        kw[k] = Duration(seconds=q[k]['sec'], nanoseconds=q[k]['nsec'])
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, **kw)


@pytest.fixture
def chef_bag(make_recorder):
    rec = make_recorder()
    s = Stream(image_px=8)
    s.cell.policy_info()
    s.episode(0, 5, 3_000 * 10**9)
    feed(rec, s.take())
    assert len(rec.published) == 1
    return rec.published[0]


def test_chef_bags_replay_into_chef_subscribers_with_compatible_qos(chef_bag):
    from rclpy.qos import QoSCompatibility, qos_check_compatible

    from chef_contract.ros import qos
    from chef_contract.topics import topic as contract_topic
    from chef_recorder.decode import contract_name
    info = read_bag_metadata(chef_bag)
    assert info['version'] == 9 and info['ros_distro'] == ROS_DISTRO
    topics = {t['topic_metadata']['name']: t['topic_metadata'] for t in info['topics_with_message_count']}
    assert len(topics) >= 15
    errors, default_errors = [], []
    for name, meta in topics.items():
        profiles = meta['offered_qos_profiles']
        assert isinstance(profiles, list) and len(profiles) == 1, name      # v9: a YAML list, one profile
        assert meta['type_description_hash'].startswith('RIHS01_'), name
        sub = qos(contract_topic(contract_name(name)).qos, 'sub')
        compat, why = qos_check_compatible(_played_offer(profiles), sub)
        if compat == QoSCompatibility.ERROR:
            errors.append((name, why))
        if qos_check_compatible(_played_offer([]), sub)[0] == QoSCompatibility.ERROR:
            default_errors.append(name)
    assert errors == []
    # what the recorded profiles fix: rosbag2's default offer fails commands (deadline) and events
    # (transient local)
    assert any('twist_cmd' in n for n in default_errors) and any('episode/events' in n for n in default_errors)


def test_chef_bag_channels_carry_qos_and_type_hash_like_rosbag2(chef_bag):
    from mcap.reader import make_reader

    from chef_recorder.layout import mcap_file
    info = read_bag_metadata(chef_bag)
    hashes = {t['topic_metadata']['name']: t['topic_metadata']['type_description_hash']
              for t in info['topics_with_message_count']}
    with open(mcap_file(chef_bag), 'rb') as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        channels = list(summary.channels.values())
        meta_records = list(reader.iter_metadata())
    assert {c.topic for c in channels} == set(hashes)
    for c in channels:
        assert c.metadata['topic_type_hash'] == hashes[c.topic]
        assert c.metadata['topic_type_hash'] == typestore().hash_rihs01(summary.schemas[c.schema_id].name)
        profiles = yaml.safe_load(c.metadata['offered_qos_profiles'])
        assert isinstance(profiles, list) and profiles[0]['reliability'] in ('reliable', 'best_effort')
    rosbag2 = [m for m in meta_records if m.name == 'rosbag2']
    assert rosbag2 and yaml.safe_load(rosbag2[0].metadata['serialized_metadata'])['ros_distro'] == ROS_DISTRO
    assert verify_bag(chef_bag, deep=True) == []
