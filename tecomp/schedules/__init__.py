"""The operator library (TVM's TOPI): compute definitions, default CPU schedules, tuning templates.

Each module holds one family of operators: ``elementwise``, ``reduction``,
``transform``, ``conv2d``, ``pooling`` (and, as they land, dense and
normalisation operators). Importing a module registers its tuning templates.
"""
