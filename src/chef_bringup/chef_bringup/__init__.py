"""Bringup of the CHEF stack: launch files, the `chef` command line, the node-graph runner."""
