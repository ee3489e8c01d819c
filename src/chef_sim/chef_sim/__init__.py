"""MuJoCo RGB-Stacking cell and ROS 2 bridge."""
