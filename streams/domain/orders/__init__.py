"""The order state machine: its inputs, its state, its outputs and its validation."""
