"""messages_to_frame works on messages decoded from bags without ROS libraries (chef_contract.msgnp)."""

import subprocess
import sys

import numpy as np

from chef_contract import topics as T
from chef_contract.frames import frame_to_messages, messages_to_frame
from chef_contract.spec import STATE_OBSERVATIONS, image_key


def test_messages_to_frame_does_not_import_rclpy():
    code = ('import sys, types\n'
            'from chef_contract.frames import messages_to_frame\n'
            'm = types.SimpleNamespace\n'
            'try:\n    messages_to_frame({})\nexcept Exception as e:\n    print(type(e).__name__)\n'
            'print("rclpy" in sys.modules)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ['FrameError', 'False']


def test_rosbags_decoded_messages_give_the_same_frame():
    from rclpy.serialization import serialize_message
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    rng = np.random.default_rng(3)
    f = {k.name: rng.normal(size=k.raw_shape).astype(np.float32) for k in STATE_OBSERVATIONS}
    for key in ('sawyer/pinch/pose', 'sawyer/tcp/pose', 'rgb30_red/abs_pose', 'rgb30_green/abs_pose',
                'rgb30_blue/abs_pose'):
        q = np.abs(rng.normal(size=4))
        f[key][3:] = q / np.linalg.norm(q)
    f[image_key('basket_front_left')] = rng.integers(0, 255, (8, 6, 3), dtype=np.uint8)
    msgs = frame_to_messages(f, 42, cameras=['basket_front_left'])
    decoded = {}
    for name, m in msgs.items():
        raw = serialize_message(m)
        md = ts.get_msgdef(T.topic(name).msg_type)     # tolerant of rmw's trailing padding
        decoded[name] = md.deserialize_cdr_le(memoryview(raw)[4:], 0, md.cls, ts)[0]
    a = messages_to_frame(msgs, cameras=['basket_front_left'], require_objects=True)
    b = messages_to_frame(decoded, cameras=['basket_front_left'], require_objects=True)
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
