"""File formats: the GPTDynamics layout (read and write) and tdabench's manifest."""
