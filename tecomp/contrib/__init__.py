"""TVM's ``tvm.contrib`` helpers that classic scripts import: ``utils`` (temp directories),
``cc`` (linking shared libraries), ``cblas`` (a matrix product by BLAS, as an extern op), ``clang``
(C to LLVM IR) and ``nvcc`` (CUDA C to PTX or cubin)."""
