"""CHEF bags in Foxglove Studio: the episode layout, and a check that a bag carries what Foxglove's MCAP
reader and panels need (docs/data.md, "Open in Foxglove").

What Foxglove needs, from its own sources (foxglove/studio, packages/studio-base/src/panels/
ThreeDeeRender/ at its last open-source revision; the MCAP format registry, mcap.dev/spec/registry):
  * MCAP profile `ros2`, schema encoding `ros2msg` (the `.msg` text with its dependencies appended),
    message encoding `cdr`, a summary with chunk indexes (to seek), chunks uncompressed, lz4 or zstd;
    panels pick topics by *schema name* (`sensor_msgs/msg/Image`, also `sensor_msgs/Image`), never by
    topic name;
  * raw images: `decodeRawImage` (Images/decodeImage.ts) takes only the encodings in
    RAW_IMAGE_ENCODINGS below; anything else is "Unsupported encoding";
  * calibration: an image panel pairs an image with a CameraInfo topic of the same prefix
    (`.../camera_info` next to `.../image_raw`) and reports an error when the image's frame_id differs
    from the CameraInfo's; the pinhole model (@foxglove/den PinholeCameraModel) refuses width or height
    0, a distortion model other than plumb_bob / rational_polynomial / empty, K, R not 9 or P not 12
    values, P[0] or P[5] = 0, binning > 1 and a shifted ROI. The 3D panel draws no image without one;
  * transforms: the 3D panel reads every topic of schema tf2_msgs/msg/TFMessage (or
    geometry_msgs/msg/TransformStamped), whatever its name, into one frame tree (no special case for
    `/tf_static`); a frame with a single transform uses it at every time (CoordinateFrame.
    findClosestTransforms), so one static TFMessage per bag places the cameras for the whole episode.
    A message is drawn only if its frame_id connects to the display frame (`followTf`).
Stdlib + `mcap` / `mcap_ros2` only (the independent decoder), so the check does not share code with
the writer it checks.

  python -m chef_recorder.foxglove layout [--cell cell1] [--output FILE]   # the layout JSON
  python -m chef_recorder.foxglove check <bag dir> ...                     # one line per problem
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

from chef_contract import topics as T
from chef_contract.spec import CAMERA_NAMES, REWARD_TERMS, WORKSPACE_CENTER_M

# Foxglove's raw-image decoder (decodeImage.ts, decodeRawImage): the encodings it draws.
RAW_IMAGE_ENCODINGS = ('rgb8', 'rgba8', 'bgr8', 'bgra8', '8UC3', 'mono8', '8UC1', 'mono16', '16UC1', '32FC1',
                       'bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8', 'uyvy', 'yuv422', 'yuyv',
                       'yuv422_yuy2')
_BYTES_PER_PIXEL = {'rgb8': 3, 'bgr8': 3, '8UC3': 3, 'rgba8': 4, 'bgra8': 4, 'mono16': 2, '16UC1': 2, '32FC1': 4,
                    'uyvy': 2, 'yuv422': 2, 'yuyv': 2, 'yuv422_yuy2': 2}            # others: 1
TF_SCHEMAS = ('tf2_msgs/msg/TFMessage', 'geometry_msgs/msg/TransformStamped')
IMAGE_SCHEMA, CAMERA_INFO_SCHEMA = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'
# schemas the 3D / image panels place by their header.frame_id
PLACED_SCHEMAS = (IMAGE_SCHEMA, CAMERA_INFO_SCHEMA, 'geometry_msgs/msg/PoseStamped', 'geometry_msgs/msg/PoseArray')
DISTORTION_MODELS = ('', 'plumb_bob', 'rational_polynomial')

LAYOUT_FILE = 'docs/foxglove/chef_episode_layout.json'
_PANEL_3D = '3D!chef_scene'
_PANEL_EVENTS = 'RawMessages!chef_events'
_PANEL_REWARDS = 'Plot!chef_rewards'
_PANEL_ACTIONS = 'Plot!chef_actions'


# ------------------------------------------------------------------------------------------------ layout
def _image_panel(camera: str) -> str:
    return f'Image!{camera}'


def episode_layout(cell: str = 'cell0') -> dict:
    """The Foxglove layout of one CHEF episode of `cell` (topics are absolute in bags: /<cell>/...): the
    three cameras, a 3D scene in base_link (TCP, wrist and object poses, camera frusta and images placed
    by tf_static), the reward terms, the policy's and the safety filter's commands, the episode events."""
    def top(name: str) -> str:
        return f'/{cell}/{name}'

    def series(topic: str, path: str, label: str) -> dict:
        # receive time: lockstep sims stamp headers in sim time (from 1 s), bags start at a wall time
        return {'value': top(topic) + path, 'enabled': True, 'timestampMethod': 'receiveTime', 'label': label}

    scene_topics: Dict[str, dict] = {
        top(T.PINCH_POSE): {'visible': True, 'type': 'axis', 'axisScale': 0.08},
        top(T.WRIST_POSE): {'visible': True, 'type': 'arrow', 'arrowScale': [0.1, 0.01, 0.01], 'color': '#ffb000'},
        top(T.OBJECT_POSES): {'visible': True, 'type': 'axis', 'axisScale': 0.05},
    }
    for c in CAMERA_NAMES:
        scene_topics[top(T.camera_info_topic(c))] = {'visible': True, 'distance': 0.15, 'width': 0.004,
                                                      'color': '#ffffff'}
        scene_topics[top(T.image_topic(c))] = {'visible': True, 'cameraInfoTopic': top(T.camera_info_topic(c)),
                                                'distance': 0.15, 'color': '#ffffff'}
    x, y, z = WORKSPACE_CENTER_M
    config = {
        _PANEL_3D: {
            'followTf': T.WORLD_FRAME, 'followMode': 'follow-none',
            'cameraState': {'perspective': True, 'distance': 1.8, 'phi': 60.0, 'thetaOffset': 150.0,
                            'target': [0, 0, 0], 'targetOffset': [x, y, z], 'targetOrientation': [0, 0, 0, 1],
                            'fovy': 45, 'near': 0.01, 'far': 100},
            'scene': {'transforms': {'showLabel': True, 'labelSize': 0.03, 'axisScale': 1.0}},
            'transforms': {f'frame:{T.WORLD_FRAME}': {'visible': True}},
            'topics': scene_topics,
            'layers': {'chef-grid': {'visible': True, 'frameLocked': True, 'label': 'Grid (1 cm cells)',
                                     'instanceId': 'chef-grid', 'layerId': 'foxglove.Grid', 'frameId': T.WORLD_FRAME,
                                     'size': 1.0, 'divisions': 100, 'lineWidth': 0.5, 'color': '#248eff40',
                                     'position': [x, y, 0.0], 'rotation': [0, 0, 0], 'order': 1}},
        },
        _PANEL_REWARDS: {
            'title': 'reward/terms (staged reward, sparse success, stage terms)',
            'paths': [series(T.REWARD_TERMS, f'.position[{i}]', name) for i, name in enumerate(REWARD_TERMS)],
            'showLegend': True, 'legendDisplay': 'floating', 'isSynced': True, 'xAxisVal': 'timestamp',
        },
        _PANEL_ACTIONS: {
            'title': 'policy/twist_cmd, gripper_cmd (points: executed, servo_node/delta_twist_cmds); m/s, rad/s, rad',
            'paths': ([series(T.POLICY_TWIST, f'.twist.linear.{a}', f'v{a}') for a in 'xyz']
                      + [series(T.POLICY_TWIST, '.twist.angular.z', 'yaw_rate'),
                         series(T.POLICY_GRIPPER, '.data[0]', 'gripper')]
                      + [dict(series(T.TWIST_CMD, f'.twist.linear.{a}', f'v{a} executed'), showLine=False)
                         for a in 'xyz']),
            'showLegend': True, 'legendDisplay': 'floating', 'isSynced': True, 'xAxisVal': 'timestamp',
        },
        _PANEL_EVENTS: {'topicPath': top(T.EPISODE_EVENTS), 'diffEnabled': False, 'expansion': 'all'},
    }
    for c in CAMERA_NAMES:
        config[_image_panel(c)] = {'imageMode': {'imageTopic': top(T.image_topic(c)),
                                                 'calibrationTopic': top(T.camera_info_topic(c))}}
    cams = [_image_panel(c) for c in CAMERA_NAMES]
    images = cams[-1]
    for i in range(len(cams) - 2, -1, -1):                 # equal widths
        images = {'first': cams[i], 'second': images, 'direction': 'row',
                  'splitPercentage': round(100.0 / (len(cams) - i), 2)}
    return {
        'configById': config,
        'globalVariables': {},
        'userNodes': {},
        'playbackConfig': {'speed': 1.0},
        'layout': {
            'first': {'first': _PANEL_3D, 'second': images, 'direction': 'column', 'splitPercentage': 60},
            'second': {'first': _PANEL_REWARDS,
                       'second': {'first': _PANEL_ACTIONS, 'second': _PANEL_EVENTS, 'direction': 'column',
                                  'splitPercentage': 65},
                       'direction': 'column', 'splitPercentage': 45},
            'direction': 'row', 'splitPercentage': 62,
        },
    }


def layout_panels(tree) -> List[str]:
    """Panel ids of a layout's split tree, left to right."""
    if isinstance(tree, str):
        return [tree]
    return layout_panels(tree['first']) + layout_panels(tree['second'])


def layout_message_paths(layout: dict) -> List[str]:
    """Every topic or message path a layout names (3D topics, image and calibration topics, plot
    series, raw-message paths)."""
    out: List[str] = []
    for cfg in layout['configById'].values():
        out += list(cfg.get('topics', {}))
        out += [v['cameraInfoTopic'] for v in cfg.get('topics', {}).values() if v.get('cameraInfoTopic')]
        out += [v for v in cfg.get('imageMode', {}).values() if isinstance(v, str)]
        out += [p['value'] for p in cfg.get('paths', [])]
        if cfg.get('topicPath'):
            out.append(cfg['topicPath'])
    return out


_PATH = re.compile(r'\.(\w+)|\[(\d+)\]')


def split_message_path(path: str, topics) -> tuple:
    """'/cell0/reward/terms.position[5]' -> ('/cell0/reward/terms', ['position', 5]) for the longest
    topic in `topics` it starts with; (None, []) if none."""
    topic = max((t for t in topics if path == t or path.startswith(t + '.') or path.startswith(t + '[')),
                key=len, default=None)
    if topic is None:
        return None, []
    rest = path[len(topic):]
    parts = [int(i) if i else f for f, i in _PATH.findall(rest)]
    if ''.join(f'.{p}' if isinstance(p, str) else f'[{p}]' for p in parts) != rest:
        raise ValueError(f'{path!r}: unsupported message path syntax after {topic!r}')
    return topic, parts


def resolve(msg, parts):
    """The value a split message path selects in a decoded message."""
    for p in parts:
        msg = msg[p] if isinstance(p, int) else getattr(msg, p)
    return msg


# ------------------------------------------------------------------------------------------------ check
def _frame(frame_id: str) -> str:
    return frame_id[1:] if frame_id.startswith('/') else frame_id      # Foxglove drops a leading '/'


def _camera_info_problems(topic: str, info) -> List[str]:
    out = []
    if info.width <= 0 or info.height <= 0:
        out.append(f'{topic}: image size {info.width}x{info.height}')
    if info.distortion_model not in DISTORTION_MODELS:
        out.append(f'{topic}: distortion model {info.distortion_model!r} (Foxglove: {DISTORTION_MODELS})')
    for field, n in (('k', 9), ('r', 9), ('p', 12)):
        if len(getattr(info, field)) not in (0, n):
            out.append(f'{topic}: {field} has {len(getattr(info, field))} values, not {n}')
    if len(info.p) == 12 and (info.p[0] == 0 or info.p[5] == 0):
        out.append(f'{topic}: focal length 0 in p (fx {info.p[0]}, fy {info.p[5]})')
    if info.binning_x > 1 or info.binning_y > 1 or info.roi.x_offset or info.roi.y_offset:
        out.append(f'{topic}: binning or shifted ROI (Foxglove cannot use the camera model)')
    return out


def bag_problems(bag_dir, fixed_frame: str = T.WORLD_FRAME) -> List[str]:
    """What keeps Foxglove Studio from showing a bag's images and poses: one line per problem, [] if
    none (see the module docstring for each rule's source). Reads the bag's MCAP with `mcap` +
    `mcap_ros2`, decoding only transforms and the messages panels place by frame."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    from chef_recorder.decode import contract_name
    from chef_recorder.layout import mcap_file
    problems: List[str] = []
    with open(mcap_file(Path(bag_dir)), 'rb') as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        if reader.get_header().profile != 'ros2':
            problems.append(f'MCAP profile {reader.get_header().profile!r}, not ros2')
        summary = reader.get_summary()
        if summary is None or not summary.chunk_indexes:
            problems.append('no summary with chunk indexes: Foxglove cannot seek in the file')
            return problems
        if {c.compression for c in summary.chunk_indexes} - {'', 'lz4', 'zstd'}:
            problems.append(f'chunk compression {sorted({c.compression for c in summary.chunk_indexes})}')
        schema_of: Dict[str, str] = {}
        for ch in summary.channels.values():
            schema = summary.schemas.get(ch.schema_id)
            if schema is None or schema.encoding != 'ros2msg' or ch.message_encoding != 'cdr':
                problems.append(f'{ch.topic}: schema encoding {getattr(schema, "encoding", None)!r} / message '
                                f'encoding {ch.message_encoding!r}, not ros2msg / cdr')
                continue
            schema_of[ch.topic] = schema.name
            if not re.fullmatch(r'\w+/msg/\w+', schema.name):
                problems.append(f'{ch.topic}: schema name {schema.name!r} is not pkg/msg/Type')
            name = contract_name(ch.topic)
            if name is not None and T.topic(name).msg_type != schema.name:
                problems.append(f'{ch.topic}: schema {schema.name}, the contract says {T.topic(name).msg_type}')
        wanted = [t for t, s in schema_of.items() if s in TF_SCHEMAS + PLACED_SCHEMAS]
        parent: Dict[str, str] = {}
        placed: Dict[str, set] = {}
        images: Dict[str, tuple] = {}            # topic -> (width, height, frame) of the last image
        infos: Dict[str, object] = {}            # topic -> last CameraInfo
        for schema, channel, _, msg in reader.iter_decoded_messages(topics=wanted):
            topic = channel.topic
            if schema.name in TF_SCHEMAS:
                for tf in (msg.transforms if schema.name == TF_SCHEMAS[0] else [msg]):
                    q = tf.transform.rotation
                    if abs(math.sqrt(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2) - 1.0) > 1e-3:
                        problems.append(f'{topic}: {tf.child_frame_id} rotation is not a unit quaternion')
                    parent[_frame(tf.child_frame_id)] = _frame(tf.header.frame_id)
                continue
            frame = _frame(msg.header.frame_id)
            placed.setdefault(topic, set()).add(frame)
            if schema.name == IMAGE_SCHEMA:
                if msg.encoding not in RAW_IMAGE_ENCODINGS:
                    problems.append(f'{topic}: encoding {msg.encoding!r} is not one Foxglove decodes')
                elif (msg.step < msg.width * _BYTES_PER_PIXEL.get(msg.encoding, 1)
                      or len(msg.data) < msg.step * msg.height):
                    problems.append(f'{topic}: {len(msg.data)} bytes, step {msg.step} for {msg.width}x{msg.height} '
                                    f'{msg.encoding}')
                images[topic] = (msg.width, msg.height, frame)
            elif schema.name == CAMERA_INFO_SCHEMA:
                infos[topic] = msg
    for topic, (w, h, frame) in sorted(images.items()):
        info_topic = topic.rsplit('/', 1)[0] + '/camera_info'
        info = infos.get(info_topic)
        if info is None:
            problems.append(f'{topic}: no CameraInfo on {info_topic} (the 3D panel draws no image without one)')
            continue
        problems += _camera_info_problems(info_topic, info)
        if (info.width, info.height) != (w, h):
            problems.append(f'{info_topic}: {info.width}x{info.height}, the image is {w}x{h}')
        if _frame(info.header.frame_id) != frame:
            problems.append(f'{topic}: frame {frame!r}, its CameraInfo says {info.header.frame_id!r}')
    if not parent:
        problems.append('no transforms (tf2_msgs/msg/TFMessage): the 3D panel cannot place camera frames')
    for topic, frames in sorted(placed.items()):
        for frame in sorted(frames):
            path = _path_to_root(frame, parent)
            if path is None:
                problems.append(f'{topic}: frame {frame!r}: the transforms have a cycle')
            elif path[-1] != fixed_frame:
                problems.append(f'{topic}: frame {frame!r} does not connect to {fixed_frame!r} '
                                f'(its tree ends at {path[-1]!r})')
    return problems


def _path_to_root(frame: str, parent: Dict[str, str]) -> Optional[List[str]]:
    path = [frame]
    while path[-1] in parent:
        path.append(parent[path[-1]])
        if path[-1] in path[:-1]:
            return None
    return path


# ------------------------------------------------------------------------------------------------ CLI
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='python -m chef_recorder.foxglove', description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    lay = sub.add_parser('layout', help='print (or write) the Foxglove layout of a CHEF episode')
    lay.add_argument('--cell', default='cell0', help='cell namespace of the bags (default cell0)')
    lay.add_argument('--output', help='write here instead of stdout')
    chk = sub.add_parser('check', help='what keeps Foxglove from showing these bags (exit 1 if anything)')
    chk.add_argument('bags', nargs='+')
    args = ap.parse_args(argv)
    if args.cmd == 'layout':
        text = json.dumps(episode_layout(args.cell), indent=2) + '\n'
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    bad = 0
    for bag in args.bags:
        try:
            problems = bag_problems(bag)
        except (OSError, ValueError) as exc:
            problems = [f'cannot read: {exc}']
        bad += bool(problems)
        print(f'{"FAIL" if problems else "ok  "} {bag}' + ''.join(f'\n     {p}' for p in problems))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
