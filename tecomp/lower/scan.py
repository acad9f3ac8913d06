"""Scans in lowering: the scan stage's bound-inference body, its shared storage, placement checks.

A ``te.scan`` stage becomes one serial loop over its scan axis (``schedule_ops``)
with its body stages (attached at that axis by the schedule) inside. For bound
inference the scan stage *reads* row ``t`` of every update over its whole spatial
extent, so each update (and what it reads) covers one row per iteration. The
init, the update and the state placeholder of a state all live in the scan's
output buffer at global indices: the init allocates it (it runs first), unless
the scan's output is an argument.
"""

from __future__ import annotations

from ..error import LoweringError
from ..te.operation import ScanOp
from ..te.schedule import Schedule, Stage
from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import ProducerLoad
from .bound import loop_chain
from .inline import tensors_read
from .schedule_ops import StorageMap


def scan_bodies(sch: Schedule) -> dict[Stage, tuple]:
    """For each scan stage, the loads bound inference sees: ``update[k][t, spatial...]``."""
    bodies = {}
    for st in sch.stages:
        op = st.op
        if isinstance(op, ScanOp):
            bodies[st] = tuple(ProducerLoad(sch.current_tensor(u), (op.scan_axis.var,) + tuple(iv.var for iv in axes))
                               for u, axes in zip(op.update, op.spatial_axis))
    return bodies


def plan_scan_storage(sch: Schedule, stages: list[Stage], storage: StorageMap) -> None:
    """Give each state's init, update and placeholder the scan output's buffer (after the arguments)."""
    for st in stages:
        op = st.op
        if not isinstance(op, ScanOp):
            continue
        for k, (init, update, state) in enumerate(zip(op.init, op.update, op.state_placeholder)):
            init_st, update_st = sch[init], sch[update]
            if init_st.attach_type != "root":
                raise LoweringError(f"scan {op.name}: its init {init.name} must be computed at root (it is "
                                    f"{init_st.attach_type}); it writes the first rows of the scan's output")
            if not (update_st.attach_type == "scope" and update_st.attach_stage is st
                    and update_st.attach_ivar is op.scan_axis):
                raise LoweringError(f"scan {op.name}: its update {update.name} must stay computed at the scan "
                                    "axis (do not inline or move it); it writes one row per iteration")
            for tensor, stage in ((init, init_st), (update, update_st)):
                if storage.key(stage, tensor.value_index) in storage.buffers:
                    raise LoweringError(f"scan {op.name}: {tensor.name} is an argument; pass the scan's "
                                        "output instead (init and update write into it)")
            out = op.output(k)
            zeros = tuple(_op.const(0, d.dtype) for d in out.shape)
            is_arg = storage.key(st, k) in storage.buffers
            if is_arg:
                buf = storage.buffer(st, k)
            else:
                buf = Buffer(out.name, out.dtype, tuple(out.shape))
                storage.add(st, k, buf, zeros, True)  # allocated where its init runs
            storage.add(init_st, init.value_index, buf, zeros, is_arg)
            storage.add(update_st, update.value_index, buf, zeros, True)
            storage.add(sch[state], 0, buf, zeros, True)


def check_scan_body_placement(sch: Schedule, stages: list[Stage], bodies: dict) -> None:
    """Every stage reading a scan's state must run inside that scan's loop."""
    for st in stages:
        for src in tensors_read(bodies[st], sch):
            for scan in stages:
                op = scan.op
                if isinstance(op, ScanOp) and any(sch[s] is src for s in op.state_placeholder) and \
                        not any(s is scan and iv is op.scan_axis for s, iv in loop_chain(st)):
                    raise LoweringError(f"stage {st.name} reads the state {src.name} of scan {op.name} but is "
                                        f"not computed inside the scan's loop; leave it attached at "
                                        f"{op.scan_axis.var.name} (or at a loop inside it)")
