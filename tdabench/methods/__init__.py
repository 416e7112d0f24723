"""The method toolkit: the zero line, the residual forms, the guards and the LM loss that methods share."""
