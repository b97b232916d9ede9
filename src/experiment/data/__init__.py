"""Data modules: the notebook's blobs (``blobs.py``), scikit-learn's breast cancer set and any numeric CSV
(``tabular.py``), all kept in memory and served as ready batches (``in_memory.py``, ``batches.py``)."""
