"""A k-nearest-neighbour training-run simulator, registered with tdabench through an entry point."""
