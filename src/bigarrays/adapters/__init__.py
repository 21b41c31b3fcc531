"""Bridges between BigArrays and the array libraries that users compose them with.

Each module imports its library (Dask, xarray) itself, and is imported only when a method that
needs it is called (``vol.to_dask()``, ``ba.from_dask(...)``), so ``import bigarrays`` never
imports them.
"""
