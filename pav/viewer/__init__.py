"""Browser viewer of a trained avatar (viser): orbit it, pose it, play a sequence, swap appearances live."""
