"""Networks, policy node and safety filter."""
