"""ros2 launch chef_bringup real.launch.py [cell:=0] [hardware:=real|mock|mujoco] [robot_ip:=...] ...

One real RGB-Stacking cell: robot_state_publisher, ros2_control (joint state and F/T broadcasters,
forward position group controller for MoveIt Servo, trajectory controller for resets, gripper
forward controller), MoveIt Servo, the three Basler camera drivers, chef_real's camera adapter,
state adapter, pixel reward and episode manager, and the same safety filter, policy node and
recorder as the sim - exactly the processes of config/graphs/real.yaml (`chef run real` starts the
same graph where ros2 launch is not available). Dry run without hardware:
    ros2 launch chef_bringup real.launch.py hardware:=mock cameras:=false reset_mode:=none
MuJoCo stand-in for the drivers and MoveIt Servo (chef_sim's hardware_emulator and servo_emulator):
    ros2 launch chef_bringup real.launch.py hardware:=mujoco reset_mode:=service
See docs/real_cell.md.
"""

from chef_bringup.launch_graph import generate_graph_launch_description


def generate_launch_description():
    return generate_graph_launch_description('real')
