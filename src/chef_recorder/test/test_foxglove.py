"""A recorded CHEF bag carries what Foxglove Studio's MCAP reader and panels need (docs/data.md, "Open in
Foxglove"; the rules and their sources are in chef_recorder/foxglove.py), and the committed layout
docs/foxglove/chef_episode_layout.json names only topics and fields that CHEF bags have.

The bag is recorded by the recorder core from a synthetic cell's exact DDS bytes (all three cameras,
the sim bridge's camera intrinsics); test_sim_bridge runs the same check on a MuJoCo bag. Fast (~2 s)."""

import json
import math
from pathlib import Path

import pytest
from conftest import Stream, feed

from chef_contract import topics as T
from chef_contract.spec import CAMERA_NAMES, CAMERAS, REWARD_TERMS
from chef_recorder.foxglove import (
    RAW_IMAGE_ENCODINGS, bag_problems, episode_layout, layout_message_paths, layout_panels, resolve,
    split_message_path,
)
from chef_recorder.layout import mcap_file

REPO = Path(__file__).resolve().parents[3]
LAYOUT = REPO / 'docs' / 'foxglove' / 'chef_episode_layout.json'
STEPS = 4


@pytest.fixture
def foxglove_bag(make_recorder):
    rec = make_recorder()
    s = Stream(cameras=CAMERA_NAMES, image_px=16)
    s.cell.policy_info()
    s.episode(0, STEPS, 3_000 * 10**9)
    feed(rec, s.take())
    assert len(rec.published) == 1
    return rec.published[0]


def _read(bag):
    """{topic: (schema name, schema encoding, message encoding)} and {topic: [decoded messages]}."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    with open(mcap_file(bag), 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == 'ros2'
        summary = reader.get_summary()
        channels = {c.topic: (summary.schemas[c.schema_id].name, summary.schemas[c.schema_id].encoding,
                              c.message_encoding) for c in summary.channels.values()}
        msgs = {}
        for _, channel, _, msg in reader.iter_decoded_messages():
            msgs.setdefault(channel.topic, []).append(msg)
    return channels, msgs


def test_recorded_bag_has_what_foxglove_needs(foxglove_bag):
    assert bag_problems(foxglove_bag) == []
    channels, msgs = _read(foxglove_bag)
    # every channel: ros2msg schema named like the contract's type, CDR messages
    for topic, (schema, schema_enc, msg_enc) in channels.items():
        assert (schema_enc, msg_enc) == ('ros2msg', 'cdr'), topic
        assert schema == T.topic(topic.split('/', 2)[2]).msg_type, topic
    for cam in CAMERA_NAMES:
        image, info = f'/cell0/{T.image_topic(cam)}', f'/cell0/{T.camera_info_topic(cam)}'
        assert channels[image][0] == 'sensor_msgs/msg/Image'
        assert channels[info][0] == 'sensor_msgs/msg/CameraInfo'
        assert len(msgs[image]) == len(msgs[info]) == STEPS + 1       # a calibration with every image
        for im, ci in zip(msgs[image], msgs[info]):
            assert im.encoding == 'rgb8' and im.encoding in RAW_IMAGE_ENCODINGS
            assert im.header.frame_id == ci.header.frame_id == T.camera_frame(cam)
            assert (ci.width, ci.height) == (im.width, im.height) == (16, 16)
            assert im.step == 3 * im.width and len(im.data) == im.step * im.height
            assert ci.distortion_model == 'plumb_bob' and len(ci.k) == 9 and len(ci.p) == 12
            assert ci.p[0] == ci.p[5] == pytest.approx(CAMERAS[cam].focal_length_px(16))
    for topic in (T.PINCH_POSE, T.WRIST_POSE, T.OBJECT_POSES):
        assert {m.header.frame_id for m in msgs[f'/cell0/{topic}']} == {T.WORLD_FRAME}


def test_tf_static_connects_every_camera_to_base_link(foxglove_bag):
    channels, msgs = _read(foxglove_bag)
    tf_topic = f'/cell0/{T.TF_STATIC}'
    assert channels[tf_topic][0] == 'tf2_msgs/msg/TFMessage'
    (tf_msg,) = msgs[tf_topic]                                     # once, at the head of the bag
    edges = {t.child_frame_id: t for t in tf_msg.transforms}
    assert set(edges) == {T.camera_frame(c) for c in CAMERA_NAMES}
    for cam in CAMERA_NAMES:
        t = edges[T.camera_frame(cam)]
        assert t.header.frame_id == T.WORLD_FRAME
        assert t.header.stamp.sec * 10**9 + t.header.stamp.nanosec == 3_000 * 10**9     # the start stamp
        tr, q = t.transform.translation, t.transform.rotation
        assert (tr.x, tr.y, tr.z) == pytest.approx(CAMERAS[cam].position_m)
        assert (q.x, q.y, q.z, q.w) == pytest.approx(CAMERAS[cam].optical_quaternion_xyzw, abs=1e-4)
        # the optical frame's z axis (REP 103: forward) is the camera's viewing direction
        z = (2 * (q.x * q.z + q.w * q.y), 2 * (q.y * q.z - q.w * q.x), 1 - 2 * (q.x ** 2 + q.y ** 2))
        assert z == pytest.approx(CAMERAS[cam].optical_axis, abs=2e-3)
        assert math.isclose(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2, 1.0, abs_tol=1e-12)


def test_bag_problems_names_what_foxglove_would_refuse(make_recorder):
    """The check is not vacuous: a bag without tf_static, with a bgr16 image (Foxglove does not decode
    it) and a CameraInfo of another size and frame, fails with one line per problem."""
    import dataclasses

    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    from chef_contract.ros import camera_info_msg, ns_to_stamp
    rec = make_recorder()
    rec.s.roles = dataclasses.replace(rec.s.roles, tf_static='')        # a recorder that writes no TF
    s = Stream(cameras=(), image_px=16)
    s.episode(0, 1, 3_000 * 10**9)
    items = s.take()
    cam = CAMERA_NAMES[0]
    im = Image(height=4, width=4, encoding='bgr16', step=24, data=bytes(96))
    im.header.stamp, im.header.frame_id = ns_to_stamp(3_000 * 10**9), T.camera_frame(cam)
    info = camera_info_msg(cam, 8)
    info.header.stamp, info.header.frame_id = im.header.stamp, 'elsewhere'
    items[1:1] = [(T.image_topic(cam), 'sensor_msgs/msg/Image', serialize_message(im)),
                  (T.camera_info_topic(cam), 'sensor_msgs/msg/CameraInfo', serialize_message(info))]
    feed(rec, items)
    rec.fake_clock.t += 10.0         # the camera's last tick never comes: closed by close_timeout_s
    rec.poll()
    problems = bag_problems(rec.published[0])
    assert any("encoding 'bgr16'" in p for p in problems)
    assert any('8x8, the image is 4x4' in p for p in problems)
    assert any("its CameraInfo says 'elsewhere'" in p for p in problems)
    assert any('no transforms' in p for p in problems)
    assert any("'elsewhere' does not connect to 'base_link'" in p for p in problems)


def test_committed_layout_is_the_generated_one():
    """docs/foxglove/chef_episode_layout.json = `python -m chef_recorder.foxglove layout` (regenerate it
    with --output when the contract changes)."""
    assert json.loads(LAYOUT.read_text()) == episode_layout('cell0')


def test_layout_names_only_topics_and_fields_of_chef_bags(foxglove_bag):
    layout = json.loads(LAYOUT.read_text())
    # a well-formed split tree over exactly the configured panels
    assert sorted(layout_panels(layout['layout'])) == sorted(layout['configById'])
    assert {p.split('!')[0] for p in layout['configById']} <= {'3D', 'Image', 'Plot', 'RawMessages'}
    channels, msgs = _read(foxglove_bag)
    contract = {f'/cell0/{t.name}' for t in T.TOPICS if not t.real_only}
    paths = layout_message_paths(layout)
    assert len(paths) > 20
    for path in paths:
        topic, fields = split_message_path(path, contract)
        assert topic is not None, f'{path}: not a contract topic of /cell0'
        assert topic in channels, f'{path}: not in a recorded CHEF bag'
        value = resolve(msgs[topic][-1], fields)                   # the field exists and is a number
        assert fields == [] or isinstance(value, (int, float)), path
    # plot labels say which reward term / action an index selects
    for cfg in layout['configById'].values():
        for p in cfg.get('paths', []):
            topic, fields = split_message_path(p['value'], contract)
            if topic.endswith(T.REWARD_TERMS):
                assert list(msgs[topic][-1].name) == list(REWARD_TERMS)
                assert p['label'] == REWARD_TERMS[fields[-1]]
    scene = layout['configById']['3D!chef_scene']
    assert scene['followTf'] == T.WORLD_FRAME
    for cam in CAMERA_NAMES:                   # every camera's image placed with its own calibration
        image = scene['topics'][f'/cell0/{T.image_topic(cam)}']
        assert image['visible'] and image['cameraInfoTopic'] == f'/cell0/{T.camera_info_topic(cam)}'
        panel = layout['configById'][f'Image!{cam}']['imageMode']
        assert panel == {'imageTopic': f'/cell0/{T.image_topic(cam)}',
                         'calibrationTopic': f'/cell0/{T.camera_info_topic(cam)}'}


def test_layout_for_another_cell_moves_every_topic():
    text = json.dumps(episode_layout('cell3'))
    assert '/cell0/' not in text and text.count('/cell3/') == json.dumps(episode_layout('cell0')).count('/cell0/')


def test_tf_static_carries_a_real_cells_calibrated_camera_poses(make_recorder, tmp_path):
    """With a real cell's calibration (config/real/cameras.yaml, moved 5 cm and turned: what a
    calibration changes), the bag's tf_static holds the calibrated poses, not the benchmark's; a
    malformed pose is refused with the camera's name."""
    import yaml

    from chef_contract.calibration import calibrated_static_transforms
    from chef_contract.config import ConfigError
    cfg = yaml.safe_load((REPO / 'config' / 'real' / 'cameras.yaml').read_text())
    cam = 'basket_front_left'
    cfg['cameras'][cam]['position_m'][0] += 0.05
    cfg['cameras'][cam]['quaternion_wxyz'] = [2.0, 0.0, 0.0, 0.0]            # identity, not unit length
    path = tmp_path / 'cameras.yaml'
    path.write_text(yaml.safe_dump(cfg))
    rec = make_recorder()
    rec.s.static_transforms = calibrated_static_transforms(path)
    s = Stream(cameras=(), image_px=16)
    s.episode(0, 1, 3_000 * 10**9)
    feed(rec, s.take())
    (tf_msg,) = _read(rec.published[0])[1][f'/cell0/{T.TF_STATIC}']
    edges = {t.child_frame_id: t.transform for t in tf_msg.transforms}
    assert set(edges) == {T.camera_frame(c) for c in cfg['cameras']}
    tr, q = edges[T.camera_frame(cam)].translation, edges[T.camera_frame(cam)].rotation
    assert (tr.x, tr.y, tr.z) == pytest.approx(cfg['cameras'][cam]['position_m'])
    assert tr.x == pytest.approx(CAMERAS[cam].position_m[0] + 0.05, abs=1e-3)
    assert (q.x, q.y, q.z, q.w) == pytest.approx((0.0, 0.0, 0.0, 1.0))
    other = edges[T.camera_frame('basket_back_left')].translation
    assert (other.x, other.y, other.z) == pytest.approx(cfg['cameras']['basket_back_left']['position_m'])
    cfg['cameras'][cam]['quaternion_wxyz'] = [0.0, 1.0]
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=cam):
        calibrated_static_transforms(path)
