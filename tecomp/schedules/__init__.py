"""The operator library (TVM's TOPI): compute definitions, default CPU schedules, tuning templates.

Each module holds one family of operators: ``elementwise``, ``reduction``,
``transform``, ``dense`` (dense, matmul, batch_matmul), ``conv2d``,
``pooling``, ``softmax``, ``norm`` (layer and batch normalisation).
Importing a module registers its tuning templates.
"""
