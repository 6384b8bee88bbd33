"""Collections: the on-disk format (collection/), the training data module, and the RenderMe-360 converter."""
