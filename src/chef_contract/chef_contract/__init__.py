"""The shared ROS contract of the CHEF stack (see docs/contract.md).

ROS-free modules: spec, topics, action, events, obs, config, graph, testing.
rclpy glue: ros, params.
"""
