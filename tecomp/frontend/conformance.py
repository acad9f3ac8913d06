"""ONNX backend node-test conformance of the importer: ``python -m tecomp.frontend.conformance``.

The onnx package ships one small model per operator case
(``onnx.backend.test.loader.load_model_tests(kind="node")``) with inputs and
expected outputs. A case is *selected* when every node of it has a converter
at the model's opset; each selected case is imported with ``from_onnx``,
compiled with ``tecomp.graph.build`` and run, and its outputs compared with
the expected ones (shape, dtype, values within ``RTOL``/``ATOL``).

Outcomes: ``pass``; ``rejected`` (``from_onnx`` refused the model with a
GraphError: an attribute value, dtype or shape it does not support);
``fail`` (wrong shape, dtype or values); ``error`` (build or run raised).
``EXPECTED_FAILURES`` names every selected case that does not pass, with its
outcome and the reason; the tests hold each case to exactly that outcome,
so the list cannot silently rot. The command prints passes per op type.

tecomp needs static shapes, so an operand that fixes an output's shape must be known at import.
Many node tests pass such operands (Reshape's shape, a reduction's axes) as graph inputs;
``import_case`` freezes exactly those inputs (``from_onnx(..., freeze=)``) and the report says so.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..error import GraphError
from .importer import DEFAULT_DOMAINS
from .registry import MIN_OPSET, find, max_opset

RTOL, ATOL = 1e-4, 1e-5

# Why selected cases do not pass; each name is held to its outcome by tests/frontend/test_conformance.py.
_DTYPES = ("an element type tecomp has no dtype for (bfloat16, float8 e4m3fn/e4m3fnuz/e5m2/e5m2fnuz/e8m0, "
           "float4e2m1, int4/uint4, int2/uint2, string)")
_TRAINING_DROPOUT = "Dropout in training mode with a nonzero ratio is random: inference only"
_NOT_TENSORS = "optional or sequence inputs: tecomp values are tensors"
_REJECTED: dict[str, tuple[str, ...]] = {
    _DTYPES: (
        "test_cast_BFLOAT16_to_FLOAT", "test_cast_FLOAT16_to_FLOAT4E2M1", "test_cast_FLOAT16_to_FLOAT8E4M3FN",
        "test_cast_FLOAT16_to_FLOAT8E4M3FNUZ", "test_cast_FLOAT16_to_FLOAT8E5M2",
        "test_cast_FLOAT16_to_FLOAT8E5M2FNUZ", "test_cast_FLOAT16_to_INT2", "test_cast_FLOAT16_to_INT4",
        "test_cast_FLOAT16_to_UINT2", "test_cast_FLOAT16_to_UINT4", "test_cast_FLOAT4E2M1_to_FLOAT",
        "test_cast_FLOAT4E2M1_to_FLOAT16", "test_cast_FLOAT8E4M3FNUZ_to_FLOAT",
        "test_cast_FLOAT8E4M3FNUZ_to_FLOAT16", "test_cast_FLOAT8E4M3FN_to_FLOAT",
        "test_cast_FLOAT8E4M3FN_to_FLOAT16", "test_cast_FLOAT8E5M2FNUZ_to_FLOAT",
        "test_cast_FLOAT8E5M2FNUZ_to_FLOAT16", "test_cast_FLOAT8E5M2_to_FLOAT", "test_cast_FLOAT8E5M2_to_FLOAT16",
        "test_cast_FLOAT_to_BFLOAT16", "test_cast_FLOAT_to_FLOAT4E2M1", "test_cast_FLOAT_to_FLOAT8E4M3FN",
        "test_cast_FLOAT_to_FLOAT8E4M3FNUZ", "test_cast_FLOAT_to_FLOAT8E5M2", "test_cast_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_cast_FLOAT_to_INT2", "test_cast_FLOAT_to_INT4", "test_cast_FLOAT_to_UINT2",
        "test_cast_FLOAT_to_UINT4", "test_cast_INT2_to_FLOAT", "test_cast_INT2_to_FLOAT16",
        "test_cast_INT2_to_INT8", "test_cast_INT4_to_FLOAT", "test_cast_INT4_to_FLOAT16",
        "test_cast_INT4_to_INT8", "test_cast_UINT2_to_FLOAT", "test_cast_UINT2_to_FLOAT16",
        "test_cast_UINT2_to_UINT8", "test_cast_UINT4_to_FLOAT", "test_cast_UINT4_to_FLOAT16",
        "test_cast_UINT4_to_UINT8", "test_cast_e8m0_FLOAT16_to_FLOAT8E8M0", "test_cast_e8m0_FLOAT8E8M0_to_FLOAT",
        "test_cast_e8m0_FLOAT8E8M0_to_FLOAT16", "test_cast_e8m0_FLOAT_to_FLOAT8E8M0",
        "test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FN", "test_cast_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ",
        "test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2", "test_cast_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ",
        "test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN", "test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ",
        "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2", "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_castlike_BFLOAT16_to_FLOAT", "test_castlike_BFLOAT16_to_FLOAT_expanded",
        "test_castlike_FLOAT16_to_FLOAT4E2M1", "test_castlike_FLOAT16_to_FLOAT4E2M1_expanded",
        "test_castlike_FLOAT16_to_FLOAT8E4M3FN", "test_castlike_FLOAT16_to_FLOAT8E4M3FNUZ",
        "test_castlike_FLOAT16_to_FLOAT8E4M3FNUZ_expanded", "test_castlike_FLOAT16_to_FLOAT8E4M3FN_expanded",
        "test_castlike_FLOAT16_to_FLOAT8E5M2", "test_castlike_FLOAT16_to_FLOAT8E5M2FNUZ",
        "test_castlike_FLOAT16_to_FLOAT8E5M2FNUZ_expanded", "test_castlike_FLOAT16_to_FLOAT8E5M2_expanded",
        "test_castlike_FLOAT16_to_INT2", "test_castlike_FLOAT16_to_INT2_expanded",
        "test_castlike_FLOAT16_to_INT4", "test_castlike_FLOAT16_to_INT4_expanded",
        "test_castlike_FLOAT16_to_UINT2", "test_castlike_FLOAT16_to_UINT2_expanded",
        "test_castlike_FLOAT16_to_UINT4", "test_castlike_FLOAT16_to_UINT4_expanded",
        "test_castlike_FLOAT4E2M1_to_FLOAT", "test_castlike_FLOAT4E2M1_to_FLOAT16",
        "test_castlike_FLOAT4E2M1_to_FLOAT16_expanded", "test_castlike_FLOAT4E2M1_to_FLOAT_expanded",
        "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT", "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT16",
        "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT16_expanded", "test_castlike_FLOAT8E4M3FNUZ_to_FLOAT_expanded",
        "test_castlike_FLOAT8E4M3FN_to_FLOAT", "test_castlike_FLOAT8E4M3FN_to_FLOAT16",
        "test_castlike_FLOAT8E4M3FN_to_FLOAT16_expanded", "test_castlike_FLOAT8E4M3FN_to_FLOAT_expanded",
        "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT", "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT16",
        "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT16_expanded", "test_castlike_FLOAT8E5M2FNUZ_to_FLOAT_expanded",
        "test_castlike_FLOAT8E5M2_to_FLOAT", "test_castlike_FLOAT8E5M2_to_FLOAT16",
        "test_castlike_FLOAT8E5M2_to_FLOAT16_expanded", "test_castlike_FLOAT8E5M2_to_FLOAT_expanded",
        "test_castlike_FLOAT_to_BFLOAT16", "test_castlike_FLOAT_to_BFLOAT16_expanded",
        "test_castlike_FLOAT_to_FLOAT4E2M1", "test_castlike_FLOAT_to_FLOAT4E2M1_expanded",
        "test_castlike_FLOAT_to_FLOAT8E4M3FN", "test_castlike_FLOAT_to_FLOAT8E4M3FNUZ",
        "test_castlike_FLOAT_to_FLOAT8E4M3FNUZ_expanded", "test_castlike_FLOAT_to_FLOAT8E4M3FN_expanded",
        "test_castlike_FLOAT_to_FLOAT8E5M2", "test_castlike_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_castlike_FLOAT_to_FLOAT8E5M2FNUZ_expanded", "test_castlike_FLOAT_to_FLOAT8E5M2_expanded",
        "test_castlike_FLOAT_to_INT2", "test_castlike_FLOAT_to_INT2_expanded", "test_castlike_FLOAT_to_INT4",
        "test_castlike_FLOAT_to_INT4_expanded", "test_castlike_FLOAT_to_UINT2",
        "test_castlike_FLOAT_to_UINT2_expanded", "test_castlike_FLOAT_to_UINT4",
        "test_castlike_FLOAT_to_UINT4_expanded", "test_castlike_INT2_to_FLOAT", "test_castlike_INT2_to_FLOAT16",
        "test_castlike_INT2_to_FLOAT16_expanded", "test_castlike_INT2_to_FLOAT_expanded",
        "test_castlike_INT2_to_INT8", "test_castlike_INT2_to_INT8_expanded", "test_castlike_INT4_to_FLOAT",
        "test_castlike_INT4_to_FLOAT16", "test_castlike_INT4_to_FLOAT16_expanded",
        "test_castlike_INT4_to_FLOAT_expanded", "test_castlike_INT4_to_INT8",
        "test_castlike_INT4_to_INT8_expanded", "test_castlike_UINT2_to_FLOAT", "test_castlike_UINT2_to_FLOAT16",
        "test_castlike_UINT2_to_FLOAT16_expanded", "test_castlike_UINT2_to_FLOAT_expanded",
        "test_castlike_UINT2_to_UINT8", "test_castlike_UINT2_to_UINT8_expanded", "test_castlike_UINT4_to_FLOAT",
        "test_castlike_UINT4_to_FLOAT16", "test_castlike_UINT4_to_FLOAT16_expanded",
        "test_castlike_UINT4_to_FLOAT_expanded", "test_castlike_UINT4_to_UINT8",
        "test_castlike_UINT4_to_UINT8_expanded", "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FN",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E4M3FN_expanded",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2", "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT16_to_FLOAT8E5M2_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FN", "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E4M3FN_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2", "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2FNUZ_expanded",
        "test_castlike_no_saturate_FLOAT_to_FLOAT8E5M2_expanded", "test_celu_bfloat16_expanded",
        "test_equal_string", "test_equal_string_broadcast", "test_range_bfloat16_type_positive_delta",
        "test_attention_3d_causal_bf16", "test_attention_4d_attn_mask_causal_bf16", "test_attention_4d_causal_bf16",
        "test_attention_4d_causal_padded_kv_bf16", "test_attention_4d_padded_kv_bf16",
        "test_attention_3d_causal_bf16_expanded", "test_attention_4d_attn_mask_causal_bf16_expanded",
        "test_attention_4d_causal_bf16_expanded", "test_attention_4d_causal_padded_kv_bf16_expanded",
        "test_attention_4d_padded_kv_bf16_expanded", "test_einsum_batch_matmul_bfloat16",
        "test_einsum_sum_bfloat16", "test_einsum_transpose_bfloat16", "test_onehot_with_bfloat16_values",
    ),
    _NOT_TENSORS: (
        "test_identity_opt", "test_identity_sequence",
    ),
    _TRAINING_DROPOUT: (
        "test_training_dropout", "test_training_dropout_default", "test_training_dropout_default_mask",
        "test_training_dropout_mask",
    ),
}
# case name -> (outcome, why)
EXPECTED_FAILURES: dict[str, tuple[str, str]] = {
    name: ("rejected", why) for why, names in _REJECTED.items() for name in names}

# case name -> (rtol, atol, why) where the default tolerance does not fit the case's data.
TOLERANCES: dict[str, tuple[float, float, str]] = {
    "test_averagepool_2d_ceil_last_window_starts_on_pad": (1e-3, 1e-5, "expected values are written with 4 digits"),
}


@dataclass(frozen=True)
class Outcome:
    """What one case did: ``kind`` is pass, rejected, fail or error; ``message`` says why."""

    case: str
    ops: tuple[str, ...]
    kind: str
    message: str = ""
    seconds: float = 0.0
    frozen: tuple[str, ...] = ()   # inputs frozen into import-time constants (see ``import_case``)


def _opset(model: Any) -> int | None:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return max(versions) if versions else None


def op_types(model: Any) -> tuple[str, ...]:
    """The distinct op types of a model's nodes, sorted."""
    return tuple(sorted({node.op_type for node in model.graph.node}))


def unsupported_reason(model: Any) -> str:
    """Why a case is not selected ('' when it is): its opset, or the first node without a converter."""
    opset = _opset(model)
    if opset is None or not MIN_OPSET <= opset <= max_opset():
        return f"opset {opset} outside {MIN_OPSET}..{max_opset()}"
    for node in model.graph.node:
        conv, _, why = find(node.op_type, node.domain, opset)
        if conv is None:
            return f"{node.op_type}: {why}"
    return ""


@lru_cache(maxsize=1)
def all_cases() -> tuple[Any, ...]:
    """Every node test case of the installed onnx package (generated in memory, a few seconds)."""
    from onnx.backend.test import loader

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return tuple(sorted(loader.load_model_tests(kind="node"), key=lambda c: c.name))


def selected_cases() -> list[Any]:
    """The cases whose every node has a converter at the case's opset."""
    return [c for c in all_cases() if not unsupported_reason(c.model)]


def case_by_name(name: str) -> Any:
    for case in all_cases():
        if case.name == name:
            return case
    raise KeyError(f"no ONNX node test case named {name!r}")


def _input_names(model: Any) -> list[str]:
    initialized = {t.name for t in model.graph.initializer}
    return [v.name for v in model.graph.input if v.name not in initialized]


def _array(value: Any) -> Any:
    """A case's input or output as numpy (they may be stored as TensorProtos)."""
    import onnx
    from onnx import numpy_helper

    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value


def tolerance(case: str, dtype: np.dtype) -> tuple[float, float]:
    """(rtol, atol) for an output: ``TOLERANCES`` for the case, else by dtype."""
    if case in TOLERANCES:
        return TOLERANCES[case][:2]
    return (2e-3, 2e-3) if dtype == np.float16 else (RTOL, ATOL)  # float16: about two ulps


def _compare(case: str, got: list[np.ndarray], expected: list[Any]) -> str:
    """'' when ``got`` matches ``expected``; otherwise what differs."""
    if len(got) != len(expected):
        return f"{len(got)} outputs, expected {len(expected)}"
    for k, (g, e) in enumerate(zip(got, expected)):
        e = np.asarray(_array(e))
        if g.shape != e.shape or g.dtype != e.dtype:
            return f"output {k}: {g.dtype}{list(g.shape)}, expected {e.dtype}{list(e.shape)}"
        if e.dtype.kind in "fc":
            rtol, atol = tolerance(case, e.dtype)
            bad = ~np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        else:
            bad = g != e
        if bad.any():
            worst = np.unravel_index(np.argmax(bad), bad.shape) if bad.ndim else ()
            return (f"output {k}: {int(bad.sum())} of {bad.size} elements differ "
                    f"(e.g. at {tuple(int(i) for i in worst)}: got {g[worst]!r}, expected {e[worst]!r})")
    return ""


def import_case(model: Any, arrays: dict[str, Any]) -> tuple[Any, dict, dict[str, np.ndarray]]:
    """``from_onnx`` on a case; the inputs the importer needs at import time (Reshape's shape, a
    reduction's axes, ... given as graph inputs by the test: ``NotConstantError.inputs``) are frozen
    with ``freeze=`` and the import retried. Returns (graph, params, frozen inputs)."""
    from .importer import NotConstantError, from_onnx

    frozen: dict[str, np.ndarray] = {}
    while True:
        runtime = {k: a for k, a in arrays.items() if k not in frozen}
        try:
            graph, params = from_onnx(model, shape={k: np.shape(a) for k, a in runtime.items()}, freeze=frozen)
            return graph, params, frozen
        except NotConstantError as exc:
            sources = [k for k in exc.inputs if k in runtime]
            if not sources:
                raise
            frozen.update((k, np.asarray(runtime[k])) for k in sources)


def run_case(case: Any) -> Outcome:
    """Import, build and run one case on each of its data sets."""
    from ..graph import build

    ops = op_types(case.model)
    start = time.perf_counter()
    names = _input_names(case.model)
    frozen: dict[str, np.ndarray] = {}

    def outcome(kind: str, message: str = "") -> Outcome:
        return Outcome(case.name, ops, kind, message, time.perf_counter() - start, tuple(frozen))

    for inputs, expected in case.data_sets:
        arrays = dict(zip(names, (_array(a) for a in inputs)))
        try:
            graph, params, frozen = import_case(case.model, arrays)
        except GraphError as exc:
            return outcome("rejected", str(exc).splitlines()[0])
        try:
            got = build(graph, "llvm", params).run(**{k: a for k, a in arrays.items() if k not in frozen})
        except Exception as exc:  # noqa: BLE001 - any failure of build or run is this case's outcome
            return outcome("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        mismatch = _compare(case.name, got, list(expected))
        if mismatch:
            return outcome("fail", mismatch)
    return outcome("pass")


def representative(cases: Iterable[Any], per_op: int = 1) -> list[Any]:
    """A small subset covering every op type: for each op type the first ``per_op`` cases containing
    it that are expected to pass, plus one expected failure per outcome kind."""
    chosen: dict[str, Any] = {}
    count: Counter = Counter()
    kinds_seen: set[str] = set()
    for case in cases:
        if case.name in EXPECTED_FAILURES:
            kind = EXPECTED_FAILURES[case.name][0]
            if kind not in kinds_seen:
                kinds_seen.add(kind)
                chosen[case.name] = case
            continue
        ops = [op for op in op_types(case.model) if op != "Constant"] or ["Constant"]
        if any(count[op] < per_op for op in ops):
            chosen[case.name] = case
            count.update(ops)
    return list(chosen.values())


def report(outcomes: list[Outcome]) -> str:
    """Passes per op type (a case counts for every op type it contains), then every non-pass."""
    per_op: dict[str, Counter] = defaultdict(Counter)
    for o in outcomes:
        for op in o.ops:
            per_op[op][o.kind] += 1
    kinds = ("pass", "rejected", "fail", "error")
    lines = [f"{'op type':<22}" + "".join(f"{k:>10}" for k in kinds)]
    for op in sorted(per_op):
        lines.append(f"{op:<22}" + "".join(f"{per_op[op][k]:>10}" for k in kinds))
    total = Counter(o.kind for o in outcomes)
    lines.append(f"{'all cases':<22}" + "".join(f"{total[k]:>10}" for k in kinds))
    frozen = [o for o in outcomes if o.frozen and o.kind == "pass"]
    lines.append(f"({len(frozen)} passing cases give an operand needed at import (shape, axes, pads, ...) as a "
                 "graph input; it was frozen with from_onnx(freeze=), see import_case)")
    for o in outcomes:
        if o.kind != "pass":
            expected = EXPECTED_FAILURES.get(o.case)
            note = "expected" if expected and expected[0] == o.kind else "UNEXPECTED"
            lines.append(f"  {o.kind:<8} {o.case} [{note}]: {o.message}")
    unexpected_pass = [o.case for o in outcomes if o.kind == "pass" and o.case in EXPECTED_FAILURES]
    lines += [f"  pass     {name} [UNEXPECTED: remove it from EXPECTED_FAILURES]" for name in unexpected_pass]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tecomp.frontend.conformance", description=__doc__.split("\n")[0])
    parser.add_argument("-k", "--filter", default="", help="only cases whose name contains this text")
    parser.add_argument("--quick", action="store_true", help="the representative subset the default tests run")
    parser.add_argument("--list", action="store_true", help="list the selected cases and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each case's outcome as it runs")
    args = parser.parse_args(argv)
    logging.getLogger("tecomp.tuner").setLevel(logging.ERROR)
    cases = [c for c in selected_cases() if args.filter in c.name]
    if args.quick:
        cases = representative(cases)
    if args.list:
        print("\n".join(f"{c.name}: {', '.join(op_types(c.model))}" for c in cases))
        return 0
    start = time.perf_counter()
    outcomes = []
    for case in cases:
        outcomes.append(run_case(case))
        if args.verbose:
            o = outcomes[-1]
            print(f"{o.kind:<8} {o.seconds:6.2f}s {o.case} {o.message}", flush=True)
    print(report(outcomes))
    print(f"{len(outcomes)} of {len(all_cases())} node cases selected, run in {time.perf_counter() - start:.1f} s")
    unexpected = [o for o in outcomes if (EXPECTED_FAILURES.get(o.case, ("pass",))[0]) != o.kind]
    return 1 if unexpected else 0


if __name__ == "__main__":
    raise SystemExit(main())
