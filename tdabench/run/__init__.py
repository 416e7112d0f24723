"""The run engine: what a method may see, the workers that fit it, the cells that score it, and each command's pipeline."""
