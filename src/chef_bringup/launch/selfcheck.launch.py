"""ros2 launch chef_bringup selfcheck.launch.py - two DDS probe nodes (config/graphs/selfcheck.yaml)."""

from chef_bringup.launch_graph import generate_graph_launch_description


def generate_launch_description():
    return generate_graph_launch_description('selfcheck')
