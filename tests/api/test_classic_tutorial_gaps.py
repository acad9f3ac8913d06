"""What running TVM's classic tutorials unchanged needed beyond the earlier ports, written afresh.

``topi.utils.get_const_tuple`` on shapes, a cuda build's imported device module, and a schedule
importing two LLVM files that both define the function its intrinsic calls, or importing a file
by its path.
"""

import llvmlite.binding as llvm
import numpy as np
import pytest

import tecomp as tvm
from tecomp import te, tir
from tecomp.codegen.nvcc import find_nvcc
from tecomp.topi.utils import get_const_int, get_const_tuple


def test_get_const_tuple_gives_ints_and_keeps_variables():
    n = te.var("n")
    A = te.placeholder((4, n, 2 * 3), name="A")
    shape = get_const_tuple(A.shape)
    assert shape[0] == 4 and shape[2] == 6 and all(isinstance(d, int) for d in (shape[0], shape[2]))
    assert shape[1] is n
    assert get_const_int(tir.const(7) + 1) == 8
    with pytest.raises(tvm.TVMError, match="not a constant"):
        get_const_int(n + 1)
    with pytest.raises(AttributeError, match="tecomp.schedules"):
        tvm.topi.nn  # noqa: B018  (topi's operators are not here)


def test_a_cpu_module_imports_no_device_module():
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: A[i] + 1, name="B")
    assert tvm.build(te.create_schedule(B.op), [A, B], "llvm").imported_modules == []


@pytest.mark.skipif(find_nvcc() is None, reason="building for cuda needs nvcc")
def test_a_cuda_module_imports_its_device_code(tmp_path):
    A = te.placeholder((256,), name="A")
    B = te.compute((256,), lambda i: A[i] * 2, name="B")
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=64)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    f = tvm.build(s, [A, B], "cuda", name="twice")
    dev_mod, = f.imported_modules
    assert dev_mod.type_key == "cuda"
    assert "__global__" in dev_mod.get_source() and dev_mod.get_source() == f.get_source("cuda")
    dev_mod.save(str(tmp_path / "twice.cu"))
    assert (tmp_path / "twice.cu").read_text() == dev_mod.get_source("cu")
    with pytest.raises(tvm.TVMError, match="source formats"):
        dev_mod.get_source("cl")


_SCALE_LL = """
define i32 @scale_rows(ptr %out, ptr %in, i32 %n, float %k) {
entry:
  br label %loop
loop:
  %i = phi i32 [0, %entry], [%next, %loop]
  %src = getelementptr float, ptr %in, i32 %i
  %dst = getelementptr float, ptr %out, i32 %i
  %x = load float, ptr %src
  %y = fmul float %x, %k
  store float %y, ptr %dst
  %next = add i32 %i, 1
  %more = icmp slt i32 %next, %n
  br i1 %more, label %loop, label %done
done:
  ret i32 0
}
"""

_HELPER_LL = """
define i32 @unused_helper(i32 %x) {
  ret i32 %x
}
"""


def _intrin_scale(width):
    a = te.placeholder((width,), name="a")
    b = te.compute((width,), lambda i: a[i] * 3.0, name="b")
    ab = tir.decl_buffer(a.shape, a.dtype, name="ab", offset_factor=1)
    bb = tir.decl_buffer(b.shape, b.dtype, name="bb", offset_factor=1)

    def body(ins, outs):
        ib = tir.ir_builder.create()
        ib.emit(tir.call_extern("int32", "scale_rows", outs[0].access_ptr("w"), ins[0].access_ptr("r"),
                                width, tir.const(3.0, "float32")))
        return ib.get()

    return te.decl_tensor_intrin(b.op, body, binds={a: ab, b: bb})


def test_two_imports_defining_one_function_link_to_one_definition():
    A = te.placeholder((6, 16), name="A")
    B = te.compute((6, 16), lambda i, j: A[i, j] * 3.0, name="B")
    s = te.create_schedule(B.op)
    i, j = B.op.axis
    s[B].tensorize(j, _intrin_scale(16))
    s[B].pragma(i, "import_llvm", _SCALE_LL)
    s[B].pragma(i, "import_llvm", _SCALE_LL + _HELPER_LL)  # a larger file defining it again
    f = tvm.build(s, [A, B], "llvm")
    a = np.random.default_rng(0).standard_normal((6, 16)).astype("float32")
    b = np.zeros((6, 16), "float32")
    f(a, b)
    np.testing.assert_allclose(b, a * 3.0, rtol=1e-6)


@pytest.mark.parametrize("suffix", [".ll", ".bc"])
def test_import_llvm_takes_the_path_of_an_ir_or_bitcode_file(tmp_path, suffix):
    path = tmp_path / f"scale{suffix}"
    if suffix == ".ll":
        path.write_text(_SCALE_LL)
    else:
        path.write_bytes(llvm.parse_assembly(_SCALE_LL).as_bitcode())
    A = te.placeholder((2, 16), name="A")
    B = te.compute((2, 16), lambda i, j: A[i, j] * 3.0, name="B")
    s = te.create_schedule(B.op)
    s[B].tensorize(B.op.axis[1], _intrin_scale(16))
    s[B].pragma(B.op.axis[0], "import_llvm", str(path))
    f = tvm.build(s, [A, B], "llvm")
    a = np.arange(32, dtype="float32").reshape(2, 16)
    b = np.zeros((2, 16), "float32")
    f(a, b)
    np.testing.assert_allclose(b, a * 3.0)
    s[B].pragma(B.op.axis[0], "import_llvm", str(tmp_path / "missing.ll"))
    with pytest.raises(tvm.BuildError, match="missing.ll is not a file"):
        tvm.build(s, [A, B], "llvm")
