"""ros2 launch chef_bringup sim.launch.py [cells:=N] [clock:=lockstep|realtime] ...

The MuJoCo RGB-Stacking cell(s) with policy, safety filter and recorder, exactly the processes of
config/graphs/sim.yaml (which `chef run sim` also starts).
"""

from chef_bringup.launch_graph import generate_graph_launch_description


def generate_launch_description():
    return generate_graph_launch_description('sim')
