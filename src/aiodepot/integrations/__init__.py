"""Doors from Python's data tools into any aiodepot store.

- [`aiodepot.integrations.fsspec`][aiodepot.integrations.fsspec]: `DepotFileSystem`, the fsspec protocol
  ``aiodepot`` (pandas, pyarrow, dask, xarray…); needs ``pip install 'aiodepot[fsspec]'``.
- [`aiodepot.integrations.zarr`][aiodepot.integrations.zarr]: `DepotZarrStore`, a zarr v3 store; needs
  ``pip install 'aiodepot[zarr]'``.
- [`aiodepot.integrations.paths`][aiodepot.integrations.paths]: how their path names become item names.
"""
