"""Making room for a new dataset: refuse, or with ``overwrite`` delete, the dataset already there.

``create``, ``bigarrays cp`` and the resharding converter share this rule, whatever the format of
the old dataset and of the new one.
"""

from __future__ import annotations

from bigarrays.errors import DatasetExistsError, DatasetNotFoundError
from bigarrays.formats.detect import detect
from bigarrays.formats.precomputed.format import delete_dataset
from bigarrays.stores import Store


def clear_destination(store: Store, overwrite: bool) -> None:
    """Make ``store`` ready to receive a new dataset (see the module notes)."""
    try:
        found, document = detect(store)
    except DatasetNotFoundError:
        return
    if not overwrite:
        raise DatasetExistsError(
            f"a dataset already exists at {store.url}; pass overwrite=True (--overwrite on the "
            "command line) to replace it"
        )
    if found == "precomputed":
        delete_dataset(store, document)
        return
    # A Zarr node owns every key below it: its chunks, and an image's levels.
    for key in list(store.list("")):
        store.delete(key)
