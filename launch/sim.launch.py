"""`ros2 launch sim.launch.py` (run by path from the repository root): the MuJoCo cell graph.

Same processes as `ros2 launch chef_bringup sim.launch.py` and `chef run sim`: all three read
config/graphs/sim.yaml. Needs the workspace sourced (install/setup.bash).
"""

from pathlib import Path

from chef_bringup.launch_graph import generate_graph_launch_description

GRAPH = Path(__file__).resolve().parent.parent / 'config' / 'graphs' / 'sim.yaml'


def generate_launch_description():
    return generate_graph_launch_description(GRAPH)
