"""Online and offline learners and the trainer node."""
