"""Devices and NDArrays: creation, alignment, dtypes, conversion, copies and errors."""

from __future__ import annotations

import numpy as np
import pytest

from tecomp.error import TecompError
from tecomp.runtime import Device, NDArray, cpu, cuda, device, nd
from tecomp.runtime.ndarray import ALIGNMENT, SUPPORTED_DTYPES

# ---- devices ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kind", [("llvm", "cpu"), ("cpu", "cpu"), ("cuda", "cuda"), ("gpu", "cuda"),
                                        ("llvm -mcpu=native", "cpu")])
def test_device_names(name: str, kind: str) -> None:
    dev = device(name, 1)
    assert dev.kind == kind and dev.index == dev.device_id == 1
    assert dev == Device(kind, 1) and hash(dev) == hash(Device(kind, 1))


def test_device_repr_equality_and_existence() -> None:
    assert repr(cpu()) == "cpu(0)" and repr(cuda(2)) == "cuda(2)"
    assert cpu(0) == device("llvm") != cuda(0)
    assert cpu(0) != cpu(1)
    assert cpu().exist
    assert isinstance(cuda(0).exist, bool)  # False without pycuda or a GPU, never an exception
    assert not cuda(10_000).exist


@pytest.mark.parametrize("name", ["tpu", "", "hexagon -mcpu=v68", "LLVM"])
def test_unknown_device_names_it(name: str) -> None:
    with pytest.raises(TecompError, match=f"unknown device {name!r}"):
        device(name)


def test_bad_device_index() -> None:
    with pytest.raises(TecompError, match="non-negative integer"):
        cpu(-1)


# ---- creation --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
def test_empty_is_aligned_for_every_dtype(dtype: str) -> None:
    for shape in [(1,), (3, 5), (7, 1, 3), ()]:
        arr = nd.empty(shape, dtype)
        assert arr.shape == shape and arr.dtype == dtype and arr.device == cpu(0)
        assert arr.data_ptr % ALIGNMENT == 0
        assert arr.numpy().dtype == np.dtype(dtype)


def test_empty_defaults_and_zero_size() -> None:
    arr = nd.empty(4)
    assert (arr.shape, arr.dtype) == ((4,), "float32")
    assert nd.empty((0, 3), "int8").numpy().shape == (0, 3)


def test_array_copies_into_aligned_storage() -> None:
    src = np.arange(1, 100, dtype=np.float64)[1:]  # an unaligned view
    arr = nd.array(src)
    assert arr.data_ptr % ALIGNMENT == 0
    src[0] = -1
    assert arr.numpy()[0] == 2
    np.testing.assert_array_equal(arr.numpy(), np.arange(2, 100))


def test_array_from_non_contiguous_and_foreign_byte_order() -> None:
    arr = nd.array(np.arange(12, dtype=">i4").reshape(3, 4).T)
    assert arr.dtype == "int32" and arr.shape == (4, 3)
    np.testing.assert_array_equal(arr.numpy(), np.arange(12).reshape(3, 4).T)


def test_array_from_lists_scalars_and_ndarray() -> None:
    assert nd.array([[1, 2], [3, 4]]).dtype == "int64"
    assert nd.array(2.5).shape == ()
    first = nd.array(np.ones(3, np.float16))
    second = nd.array(first)
    first.copyfrom(np.zeros(3))
    assert second.dtype == "float16" and second.numpy().tolist() == [1, 1, 1]


class ArrayLike:
    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.data


class DLPackOnly:
    """A DLPack producer without ``__array__`` (as GPU-capable libraries often are)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def __dlpack__(self, **kwargs):
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()


def test_array_from_array_interface_and_dlpack() -> None:
    data = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for producer in (ArrayLike(data), DLPackOnly(data)):
        arr = nd.array(producer)
        assert (arr.shape, arr.dtype) == ((2, 3), "uint8")
        np.testing.assert_array_equal(arr.numpy(), data)


def test_ndarray_is_a_dlpack_producer_and_array_like() -> None:
    arr = nd.array(np.arange(4, dtype=np.int16))
    view = np.from_dlpack(arr)
    view[0] = 9
    assert arr.numpy()[0] == 9
    np.testing.assert_array_equal(np.asarray(arr), [9, 1, 2, 3])


@pytest.mark.parametrize("data, name", [
    (np.zeros(2, np.complex64), "complex64"),
    (np.array([object()]), "object"),
    (np.array(["ab"]), "<U2"),
    (["a", "b"], "<U1"),
    (np.zeros(2, np.longdouble), "float128"),
])
def test_unsupported_dtypes_are_named(data: object, name: str) -> None:
    with pytest.raises(TecompError, match=f"unsupported dtype '{name}'"):
        nd.array(data)


@pytest.mark.parametrize("dtype", ["complex128", "handle", "boolx4", "bfloat16"])
def test_empty_with_unsupported_dtype(dtype: str) -> None:
    with pytest.raises(TecompError, match=f"unsupported dtype '{dtype}'"):
        nd.empty((2,), dtype)


@pytest.mark.parametrize("shape", [(-1,), (2.5,), "ab", (True,)])
def test_empty_with_bad_shape(shape: object) -> None:
    with pytest.raises(TecompError, match="shape must be a tuple of non-negative integers"):
        nd.empty(shape)


@pytest.mark.skipif(cuda(0).exist, reason="this host has a usable GPU")
def test_cuda_arrays_without_a_driver_raise_a_clear_error() -> None:
    with pytest.raises(TecompError, match=r"no CUDA driver/pycuda"):
        nd.empty((2,), "float32", cuda(0))
    with pytest.raises(TecompError, match="no CUDA driver/pycuda"):
        nd.array(np.zeros(2), cuda(0))
    with pytest.raises(TecompError, match="no CUDA driver/pycuda"):
        nd.array(np.zeros(2)).copyto(cuda(0))


def test_device_argument_must_be_a_device() -> None:
    with pytest.raises(TecompError, match="expected a tecomp Device"):
        nd.empty((2,), "float32", "cpu")


# ---- copies ----------------------------------------------------------------------------------


def test_numpy_returns_a_copy() -> None:
    arr = nd.array(np.zeros(3, np.float32))
    out = arr.numpy()
    out[:] = 5
    assert not arr.numpy().any()


def test_copyfrom_casts_and_checks_shape() -> None:
    arr = nd.empty((2, 2), "float32")
    assert arr.copyfrom([[1, 2], [3, 4]]) is arr
    assert arr.numpy().tolist() == [[1.0, 2.0], [3.0, 4.0]]
    arr.copyfrom(nd.array(np.full((2, 2), 7, np.int32)))
    assert arr.numpy().tolist() == [[7.0, 7.0], [7.0, 7.0]]
    with pytest.raises(TecompError, match=r"source shape \(3,\) does not match array shape \(2, 2\)"):
        arr.copyfrom(np.zeros(3))


def test_copyto_array_and_device() -> None:
    src = nd.array(np.arange(3, dtype=np.int64))
    dst = nd.empty((3,), "int64")
    assert src.copyto(dst) is dst
    assert dst.numpy().tolist() == [0, 1, 2]
    moved = src.copyto(cpu(0))
    assert moved is not src and moved.numpy().tolist() == [0, 1, 2]
    with pytest.raises(TecompError, match=r"target is float32\[3\], source is int64\[3\]"):
        src.copyto(nd.empty((3,), "float32"))
    with pytest.raises(TecompError, match="copyto expects an NDArray or a Device"):
        src.copyto(np.zeros(3))


def test_wrapping_constructor_shares_memory_and_refuses_views() -> None:
    data = np.zeros(4, np.float32)
    arr = NDArray(data)
    data[1] = 3
    assert arr.numpy()[1] == 3
    with pytest.raises(TecompError, match="C-contiguous"):
        NDArray(np.zeros(8)[::2])
    with pytest.raises(TecompError, match="wraps a numpy array"):
        NDArray([1, 2])


def test_repr() -> None:
    text = repr(nd.array(np.array([1, 2], np.int8)))
    assert text.startswith("<tecomp.NDArray shape=(2,), cpu(0)>\narray([1, 2], dtype=int8)")
