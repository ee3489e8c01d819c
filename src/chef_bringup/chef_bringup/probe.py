"""DDS self-check nodes: `chef run selfcheck` proves that processes of this install talk over DDS.

dds_probe_pub publishes a counter on `probe/chatter` at `rate_hz`; dds_probe_sub counts what it
receives, logs a line per second and, if `report_file` is set, keeps the count in that file.
`fail_after_s` > 0 makes a node exit with code 3 after that time (used to test how a graph reacts to
a failing required node).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String

from chef_contract.config import field_
from chef_contract.params import declare_params
from chef_contract.ros import qos, spin_node

TOPIC = 'probe/chatter'


class ProbeFailure(SystemExit):
    pass


@dataclass
class PubParams:
    rate_hz: float = field_(20.0, help='publish rate', min=0.1, max=1000.0)
    fail_after_s: float = field_(0.0, help='exit with code 3 after this many seconds (0 = never)', min=0.0)


@dataclass
class SubParams:
    report_file: str = field_('', help='file that holds the received count as JSON')
    fail_after_s: float = field_(0.0, help='exit with code 3 after this many seconds (0 = never)', min=0.0)


class ProbePublisher(Node):
    def __init__(self):
        super().__init__('dds_probe_pub')
        self.p = declare_params(self, PubParams)
        self.pub = self.create_publisher(String, TOPIC, qos('event', 'pub'))
        self.count = 0
        self.t0 = time.monotonic()
        self.create_timer(1.0 / self.p.rate_hz, self._tick)

    def _tick(self):
        if self.p.fail_after_s and time.monotonic() - self.t0 > self.p.fail_after_s:
            self.get_logger().error('fail_after_s reached: exiting with code 3 on purpose')
            raise ProbeFailure(3)
        self.count += 1
        self.pub.publish(String(data=json.dumps({'n': self.count, 't': time.time()})))


class ProbeSubscriber(Node):
    def __init__(self):
        super().__init__('dds_probe_sub')
        self.p = declare_params(self, SubParams)
        self.count = 0
        self.t0 = time.monotonic()
        self.create_subscription(String, TOPIC, self._on_msg, qos('event', 'sub'))
        self.create_timer(1.0, self._report)

    def _on_msg(self, msg):
        self.count += 1
        if self.p.report_file:      # atomic: a reader never sees a half-written file
            tmp = Path(self.p.report_file + '.tmp')
            tmp.write_text(json.dumps({'received': self.count}))
            os.replace(tmp, self.p.report_file)

    def _report(self):
        self.get_logger().info(f'received {self.count} messages')
        if self.p.fail_after_s and time.monotonic() - self.t0 > self.p.fail_after_s:
            self.get_logger().error('fail_after_s reached: exiting with code 3 on purpose')
            raise ProbeFailure(3)


NODE_PARAMS = {'dds_probe_pub': PubParams, 'dds_probe_sub': SubParams}


def _main(factory) -> None:
    try:
        code = spin_node(factory)
    except ProbeFailure as exc:
        code = exc.code
    sys.exit(code)


def pub_main(args=None):
    _main(ProbePublisher)


def sub_main(args=None):
    _main(ProbeSubscriber)
