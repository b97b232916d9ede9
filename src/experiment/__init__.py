"""Your experiment: the part of the template you copy, rename and edit.

The notebook's sigmoid MLP (``model.py``, ``nets.py``), its data (``blobs.py``) and two more
data sets (``tabular.py``), all kept in memory and served as ready batches (``in_memory.py``,
``batches.py``), and a second experiment written as Lightning's docs write one (``digits.py``).
Nothing in ``optlab``, the machinery that runs them, imports this package: configs name its
classes (``configs/model/``, ``configs/data/``), and any module of your own works the same way.
"""
