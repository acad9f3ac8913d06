"""TVM's ``tvm.contrib`` helpers that classic scripts import: ``utils`` (temp directories),
``cc`` (linking shared libraries) and ``cblas`` (a matrix product by BLAS, as an extern op)."""
