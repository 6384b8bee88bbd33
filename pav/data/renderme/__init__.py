"""RenderMe-360: reading its SMC (HDF5) files. Importing this package is cheap (h5py loads with the reader)."""

from .reader import SMCError, SMCReader

__all__ = ["SMCError", "SMCReader"]
