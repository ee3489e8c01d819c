"""launch_testing: the selfcheck graph through real `ros2 launch` machinery.

Runs where ROS 2's `launch`, `launch_ros` and `launch_testing` are installed (a ROS 2 Kilted/Jazzy
machine); skipped here, where they cannot be installed from PyPI. Its twin that runs here (same
graph, same check, cannot skip): test_launch_twins.py.
"""

import pytest

launch_testing = pytest.importorskip(
    'launch_testing', reason='launch_testing is not installable from PyPI; runs on a full ROS 2 install')
launch_ros = pytest.importorskip('launch_ros', reason='launch_ros is not installable from PyPI')

import unittest  # noqa: E402

import launch_testing.actions  # noqa: E402,F811
from chef_bringup.launch_graph import generate_graph_launch_description  # noqa: E402


@pytest.mark.launch_test
def generate_test_description():
    ld = generate_graph_launch_description('selfcheck')
    ld.add_action(launch_testing.actions.ReadyToTest())
    return ld


class TestProbeTalks(unittest.TestCase):
    def test_subscriber_reports_messages(self, proc_output):
        proc_output.assertWaitFor('received', timeout=15, stream='stdout')
