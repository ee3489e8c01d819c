"""CHEF on a real RGB-Stacking cell: robot description, state/camera adapters, pixel reward, episode manager."""
