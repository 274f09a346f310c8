"""``jetlib.Reader``: a zero-copy, torch-compatible reader of a store.

With torch installed, :class:`Reader` is also a ``torch.utils.data.IterableDataset``
(usable in a ``DataLoader`` with ``batch_size=None`` and any ``num_workers``); without
torch it yields NumPy batches. ``import jetlib`` never imports torch.
"""

from __future__ import annotations

from jetlib.reader.reader import ReaderBase, _torch_available

__all__ = ["Reader"]

if _torch_available():
    import torch.utils.data

    class Reader(ReaderBase, torch.utils.data.IterableDataset):  # type: ignore[misc]
        __doc__ = ReaderBase.__doc__

else:

    class Reader(ReaderBase):  # type: ignore[no-redef]
        __doc__ = ReaderBase.__doc__
