"""The network zoo: real PyTorch networks exported to ONNX, imported and run by tecomp beside onnxruntime.

Each network is built with random weights (``torch.manual_seed(0)``) and a small config at
batch 1, from torchvision, timm, Hugging Face transformers (configs built from config
objects: nothing is downloaded) or ``torch.nn``, and exported once with ``torch.onnx.export``:
the dynamo exporter at opset 18 by default, the TorchScript exporter at opset 17 where named
(``_ts`` variants, the recurrent networks and ``nn.TransformerEncoder``, whose ``_dynamo``
variants take the default). The ``.onnx`` file and its inputs (``.npz``) are cached under
``~/.cache/tecomp/zoo/`` (``TECOMP_ZOO_CACHE`` overrides); once cached, torch is not imported.

Per network one row: whether tecomp imports it (else the importer's error, one line), the
maximum relative error against onnxruntime on the same inputs (max |tecomp - ORT| over max
|ORT|, worst output), compile seconds (``tecomp.graph.build``), the median latency of tecomp
and of onnxruntime (same process, same thread count: ``--threads`` for tecomp's runtime and
numpy's BLAS, ``intra_op_num_threads`` for ORT with all graph optimisations; the two sides'
measurements taken in turns, so that both see the same machine load; ORT writes into
preallocated output buffers through an IO binding, tecomp's ``GraphModule.run`` allocates
its outputs, the only form its API has) and ORT / tecomp (above 1: tecomp faster); then a
geomean row and every failure in full. With ``--records DB`` a tuned build (under the
records) is timed beside the default one; with ``--budget TIME`` each network is first
tuned for that wall-clock time (``tecomp tune --budget``, candidates timed at ``--threads``)
into that database (default ``zoo_tuned.db``).

Needs the ``zoo`` extra (torch, torchvision, timm, transformers, onnxscript) for exporting;
the tests never do.

    python benchmarks/zoo.py [--threads 1] [--only resnet18,bert] [--records tune.db] [--budget 10m]
    python benchmarks/zoo.py --export-only            # fill the cache, run nothing
    python benchmarks/zoo.py --profile gpt2 [--top 15] # per-kernel profile of one network
    python benchmarks/zoo.py --list
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import interleaved_medians, ort_op_seconds, ort_runner, ort_session, threads
from tecomp.cli import parse_duration

CACHE = Path(os.environ.get("TECOMP_ZOO_CACHE", Path.home() / ".cache" / "tecomp" / "zoo"))

# ---------------------------------------------------------------------------- networks
#
# A builder returns (torch module, named inputs as numpy arrays); the module's forward takes
# the inputs positionally in that order and returns a tensor or a tuple of tensors.

SEQ, PAD, VOCAB = 32, 5, 1000  # text: 32 tokens, the last 5 padding (attention mask 0)


@dataclass(frozen=True)
class Network:
    """One zoo entry: how to build it, which exporter writes it, at which opset."""

    name: str
    family: str
    build: Callable[[], tuple[Any, dict[str, np.ndarray]]]
    exporter: str = "dynamo"  # or "torchscript"
    opset: int = 18

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.exporter}{self.opset}"


def _rng() -> np.random.Generator:
    return np.random.default_rng(1)


def _image(size: int, channels: int = 3) -> dict[str, np.ndarray]:
    return {"image": _rng().standard_normal((1, channels, size, size)).astype("float32")}


def _tokens() -> dict[str, np.ndarray]:
    mask = np.ones((1, SEQ), "int64")
    mask[:, SEQ - PAD:] = 0
    return {"input_ids": _rng().integers(0, VOCAB, (1, SEQ)).astype("int64"), "attention_mask": mask}


def _wrap(module: Any, pick: Callable[[Any], Any], names: list[str] | None = None, **fixed: Any) -> Any:
    """``module`` wrapped so that forward(*inputs) returns ``pick`` of its output; with ``names``,
    the inputs are passed by those keywords (Hugging Face models), with ``fixed`` keywords added."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *inputs: Any) -> Any:
            if names is None:
                return pick(self.inner(*inputs, **fixed))
            return pick(self.inner(**dict(zip(names, inputs)), **fixed))

    return Wrapped()


def _hidden(module: Any, names: list[str], **fixed: Any) -> Any:
    """A Hugging Face model taking ``names`` positionally and returning ``last_hidden_state``."""
    return _wrap(module, lambda out: out.last_hidden_state, names, **fixed)


def _torchvision(factory: str, size: int = 224, zero_fc_bias: bool = False,
                 **kwargs: Any) -> Callable[[], tuple[Any, dict]]:
    """A torchvision classifier. ``zero_fc_bias``: where the features shrink through the random
    layers, the logits would be the classifier's bias alone and the ORT comparison vacuous."""
    def build() -> tuple[Any, dict]:
        import torchvision
        net = getattr(torchvision.models, factory)(weights=None, **kwargs)
        if zero_fc_bias:
            net.fc.bias.data.zero_()
        return net, _image(size)
    return build


def _lraspp() -> tuple[Any, dict]:
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large
    net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)
    return _wrap(net, lambda out: out["out"]), _image(224)


def _timm(name: str) -> Callable[[], tuple[Any, dict]]:
    def build() -> tuple[Any, dict]:
        import timm
        net = timm.create_model(name, pretrained=False)
        return net, _image(net.pretrained_cfg["input_size"][-1])
    return build


def _unet() -> tuple[Any, dict]:
    """A two-level U-Net: conv blocks, max pooling, ConvTranspose upsampling, skip Concats."""
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                             nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self, c: int = 16, classes: int = 2) -> None:
            super().__init__()
            self.enc1, self.enc2, self.mid = block(3, c), block(c, 2 * c), block(2 * c, 4 * c)
            self.pool = nn.MaxPool2d(2)
            self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), block(4 * c, 2 * c)
            self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2), block(2 * c, c)
            self.head = nn.Conv2d(c, classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            m = self.mid(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
            return self.head(self.dec1(torch.cat([self.up1(d2), e1], dim=1)))

    return UNet(), _image(128)


def _bert() -> tuple[Any, dict]:
    from transformers import BertConfig, BertModel
    config = BertConfig(vocab_size=VOCAB, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, max_position_embeddings=128)
    return _hidden(BertModel(config), ["input_ids", "attention_mask"]), _tokens()


def _gpt2() -> tuple[Any, dict]:
    from transformers import GPT2Config, GPT2Model
    config = GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=128, n_layer=2, n_head=2,
                        bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    return _hidden(GPT2Model(config), ["input_ids", "attention_mask"], use_cache=False), _tokens()


def _distilbert() -> tuple[Any, dict]:
    from transformers import DistilBertConfig, DistilBertModel
    config = DistilBertConfig(vocab_size=VOCAB, dim=128, n_layers=2, n_heads=2, hidden_dim=512,
                              max_position_embeddings=128)
    return _hidden(DistilBertModel(config), ["input_ids", "attention_mask"]), _tokens()


def _t5_encoder() -> tuple[Any, dict]:
    from transformers import T5Config, T5EncoderModel
    config = T5Config(vocab_size=VOCAB, d_model=128, d_kv=32, d_ff=512, num_layers=2, num_heads=4)
    return _hidden(T5EncoderModel(config), ["input_ids", "attention_mask"]), _tokens()


def _whisper_encoder() -> tuple[Any, dict]:
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    config = WhisperConfig(num_mel_bins=80, d_model=128, encoder_layers=2, encoder_attention_heads=2,
                           encoder_ffn_dim=512, max_source_positions=100)
    features = _rng().standard_normal((1, 80, 200)).astype("float32")  # 2 x max_source_positions frames
    return _hidden(WhisperEncoder(config), ["input_features"]), {"input_features": features}


def _wav2vec2() -> tuple[Any, dict]:
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    config = Wav2Vec2Config(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512,
                            conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            feat_extract_norm="layer", do_stable_layer_norm=True)
    samples = 8000
    mask = np.ones((1, samples), "int64")
    mask[:, samples - 1000:] = 0
    audio = (0.1 * _rng().standard_normal((1, samples))).astype("float32")
    return (_hidden(Wav2Vec2Model(config), ["input_values", "attention_mask"]),
            {"input_values": audio, "attention_mask": mask})


def _recurrent(kind: str) -> Callable[[], tuple[Any, dict]]:
    def build() -> tuple[Any, dict]:
        from torch import nn
        if kind == "lstm":
            net = nn.LSTM(input_size=64, hidden_size=128, num_layers=2, batch_first=True)
        else:
            net = nn.GRU(input_size=64, hidden_size=96, num_layers=1, batch_first=True, bidirectional=True)
        x = _rng().standard_normal((1, 50, 64)).astype("float32")
        return _wrap(net, lambda out: out[0]), {"x": x}
    return build


def _transformer_encoder() -> tuple[Any, dict]:
    from torch import nn
    layer = nn.TransformerEncoderLayer(d_model=128, nhead=4, dim_feedforward=512, batch_first=True)
    x = _rng().standard_normal((1, 50, 128)).astype("float32")
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False), {"x": x}


TS = {"exporter": "torchscript", "opset": 17}

NETWORKS: dict[str, Network] = {n.name: n for n in [
    Network("mobilenet_v3_small", "torchvision", _torchvision("mobilenet_v3_small")),
    Network("squeezenet1_1", "torchvision", _torchvision("squeezenet1_1")),
    Network("efficientnet_b0", "torchvision", _torchvision("efficientnet_b0")),
    Network("shufflenet_v2_x0_5", "torchvision", _torchvision("shufflenet_v2_x0_5", zero_fc_bias=True)),
    Network("googlenet", "torchvision", _torchvision("googlenet", zero_fc_bias=True, aux_logits=False,
                                                     init_weights=True)),
    Network("regnet_y_400mf", "torchvision", _torchvision("regnet_y_400mf")),
    Network("lraspp_mobilenet_v3", "torchvision", _lraspp),
    Network("resnet18", "torchvision", _torchvision("resnet18")),
    Network("resnet18_ts", "torchvision", _torchvision("resnet18"), **TS),
    Network("unet", "inline", _unet),
    Network("vit_tiny", "timm", _timm("vit_tiny_patch16_224")),
    Network("convnext_atto", "timm", _timm("convnext_atto")),
    Network("mobilevit_xxs", "timm", _timm("mobilevit_xxs")),
    Network("bert", "transformers", _bert),
    Network("bert_ts", "transformers", _bert, **TS),
    Network("gpt2", "transformers", _gpt2),
    Network("distilbert", "transformers", _distilbert),
    Network("t5_encoder", "transformers", _t5_encoder),
    Network("whisper_encoder", "transformers", _whisper_encoder),
    Network("wav2vec2", "transformers", _wav2vec2),
    Network("lstm", "torch.nn", _recurrent("lstm"), **TS),
    Network("lstm_dynamo", "torch.nn", _recurrent("lstm")),
    Network("gru", "torch.nn", _recurrent("gru"), **TS),
    Network("transformer_encoder", "torch.nn", _transformer_encoder, **TS),
    Network("transformer_encoder_dynamo", "torch.nn", _transformer_encoder),
]}


# ---------------------------------------------------------------------------- export + cache


def export(net: Network, force: bool = False) -> tuple[Path, Path]:
    """The cached ``.onnx`` and ``.npz`` (inputs) of ``net``, exporting them first if missing."""
    onnx_path, inputs_path = CACHE / f"{net.stem}.onnx", CACHE / f"{net.stem}.npz"
    if not force and onnx_path.exists() and inputs_path.exists():
        return onnx_path, inputs_path
    import torch

    CACHE.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    module, inputs = net.build()
    module.eval()
    args = tuple(torch.from_numpy(v) for v in inputs.values())
    partial = CACHE / f"{net.stem}.partial.onnx"
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # nn.TransformerEncoder's fused kernel has no ONNX form
    try:
        with torch.no_grad():
            if net.exporter == "dynamo":
                torch.onnx.export(module, args, str(partial), dynamo=True, opset_version=net.opset,
                                  input_names=list(inputs), external_data=False, verbose=False)
            else:
                torch.onnx.export(module, args, str(partial), dynamo=False, opset_version=net.opset,
                                  input_names=list(inputs))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    np.savez(inputs_path, **inputs)
    partial.replace(onnx_path)
    return onnx_path, inputs_path


def load_inputs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


# ---------------------------------------------------------------------------- measuring


def one_line(exc: BaseException) -> str:
    """An exception in one line: the unsupported op types of an import, else the first line."""
    nodes = getattr(exc, "nodes", None)
    if nodes:
        return f"unsupported: {', '.join(sorted({op for op, _, _ in nodes}))}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def details(exc: BaseException) -> list[str]:
    """An exception in full, with an import's unsupported nodes deduplicated by (op, reason)."""
    nodes = getattr(exc, "nodes", None)
    if not nodes:
        return [f"{type(exc).__name__}: {exc}"]
    seen: dict[tuple[str, str], list[str]] = {}
    for op, name, why in nodes:
        seen.setdefault((op, why), []).append(name)
    return [f"{op}: {why} ({len(names)} node(s), e.g. {names[0]!r})" for (op, why), names in seen.items()]


def relative_error(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """max |got - want| / max |want| over each output, the worst of the outputs."""
    if len(got) != len(want):
        raise ValueError(f"tecomp gave {len(got)} outputs, onnxruntime {len(want)}")
    worst = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            raise ValueError(f"output shape {list(g.shape)} from tecomp, {list(w.shape)} from onnxruntime")
        g, w = g.astype("float64"), w.astype("float64")
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        diff = float(np.max(np.abs(g - w))) if w.size else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff, 0.0 if np.isfinite(diff) else math.inf)
    return worst


@dataclass
class Row:
    name: str
    exporter: str
    status: str = "yes"
    error: float | None = None
    compile_s: float | None = None
    tecomp_s: float | None = None
    ort_s: float | None = None
    tuned_s: float | None = None
    failure: list[str] | None = None

    @property
    def ratio(self) -> float | None:
        return self.ort_s / self.tecomp_s if self.ort_s and self.tecomp_s else None

    @property
    def tuned_ratio(self) -> float | None:
        return self.ort_s / self.tuned_s if self.ort_s and self.tuned_s else None


def _fail(row: Row, stage: str, exc: BaseException) -> Row:
    status = f"{stage}: {one_line(exc)}" if stage != "import" else one_line(exc)
    row.status = status if len(status) <= 110 else status[:109] + "…"
    row.failure = (row.failure or []) + [f"{stage}: {line}" for line in details(exc)]
    return row


def import_network(onnx_path: Path, inputs: dict[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray]]:
    """tecomp's graph and params of the cached model, at the shapes of ``inputs``."""
    import onnx

    from tecomp.frontend import from_onnx
    return from_onnx(onnx.load(str(onnx_path)), shape={k: v.shape for k, v in inputs.items()})


def build_network(graph: Any, params: dict[str, np.ndarray], records: str | None) -> tuple[Any, float]:
    """The compiled module (under ``records`` when given) and the seconds ``tecomp.graph.build`` took."""
    import tecomp.graph
    from tecomp import tuner as autotvm

    context = autotvm.apply_history_best(records) if records else contextlib.nullcontext()
    start = time.perf_counter()
    with context:
        module = tecomp.graph.build(graph, "llvm", params)
    return module, time.perf_counter() - start


def _tecomp(row: Row, onnx_path: Path, inputs: dict[str, np.ndarray], records: str | None,
            want: list[np.ndarray] | None, budget: float | None = None) -> Callable[[], object] | None:
    """Import, (tune for ``budget`` seconds,) build, run once and check against ``want``: the run
    call, or None (``row`` failed). The compile time of the default build (no records) is the row's."""
    try:
        graph, params = import_network(onnx_path, inputs)
    except Exception as exc:  # noqa: BLE001 - every tecomp failure is a row, not a crash
        _fail(row, "import", exc)
        return None
    if budget:
        from tecomp.graph.tuning import tune_model
        from tecomp.runtime.threads import wanted_num_threads
        try:
            tune_model(graph, params, records, trials=10_000, budget=budget, progress=False,
                       num_threads=wanted_num_threads())
        except Exception as exc:  # noqa: BLE001
            _fail(row, "tune", exc)
            return None
    try:
        module, seconds = build_network(graph, params, records)
        if records is None:
            row.compile_s = seconds
    except Exception as exc:  # noqa: BLE001
        _fail(row, "compile", exc)
        return None
    try:
        got = module.run(**inputs)
        if want is not None:
            row.error = relative_error(got, want)
    except Exception as exc:  # noqa: BLE001
        _fail(row, "run", exc)
        return None
    return lambda: module.run(**inputs)


def measure(net: Network, nthreads: int, records: str | None, repeat: int, min_ms: float,
            force_export: bool = False, budget: float | None = None) -> Row:
    """One network's row: export (or the cache), ORT, import, build (default, and tuned under
    ``records`` after ``budget`` seconds of tuning), check, time all in turns."""
    row = Row(net.name, net.exporter)
    try:
        onnx_path, inputs_path = export(net, force_export)
    except Exception as exc:  # noqa: BLE001 - any exporter failure is a row, not a crash
        return _fail(row, "export", exc)
    inputs = load_inputs(inputs_path)
    with threads(nthreads):
        ort_call, want = None, None
        try:
            ort_call, outs = ort_runner(ort_session(onnx_path.read_bytes(), nthreads), inputs)
            ort_call()
            want = [o.copy() for o in outs]
        except Exception as exc:  # noqa: BLE001
            ort_call = None
            row.failure = [f"onnxruntime: {details(exc)[0]}"]
        tecomp_call = _tecomp(row, onnx_path, inputs, None, want)
        tuned_call = _tecomp(row, onnx_path, inputs, records, want, budget) if records and tecomp_call else None
        calls = {side: call for side, call in (("ort", ort_call), ("tecomp", tecomp_call), ("tuned", tuned_call))
                 if call}
        seconds = dict(zip(calls, interleaved_medians(list(calls.values()), repeat, min_ms)))
    row.ort_s, row.tecomp_s, row.tuned_s = seconds.get("ort"), seconds.get("tecomp"), seconds.get("tuned")
    return row


# ---------------------------------------------------------------------------- reporting


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.3f}" if seconds else "-"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _geo(values: list[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def table(rows: list[Row], tuned: bool = False) -> list[str]:
    """The result as a Markdown table, a geomean row last; ``tuned`` adds the tuned build's columns."""
    extra = " tuned ms | ORT/tuned |" if tuned else ""
    lines = ["| network | exporter | imports | max rel err | compile s | tecomp ms | ORT ms | ORT/tecomp |" + extra,
             "|---|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if tuned else "")]
    for r in rows:
        err = "-" if r.error is None else f"{r.error:.1e}"
        comp = "-" if r.compile_s is None else f"{r.compile_s:.1f}"
        more = f" {_ms(r.tuned_s)} | {_ratio(r.tuned_ratio)} |" if tuned else ""
        lines.append(f"| {r.name} | {r.exporter} | {r.status} | {err} | {comp} | {_ms(r.tecomp_s)} | "
                     f"{_ms(r.ort_s)} | {_ratio(r.ratio)} |" + more)
    ran = [r for r in rows if r.ratio is not None]
    if ran:
        both = [r for r in ran if r.tuned_ratio is not None]
        more = (f" {_ms(_geo([r.tuned_s for r in both]))} | {_geo([r.tuned_ratio for r in both]):.2f} |"
                if tuned and both else (" - | - |" if tuned else ""))
        lines.append(f"| geomean ({len(ran)} of {len(rows)}) | | | | {_geo([r.compile_s for r in ran]):.1f} | "
                     f"{_ms(_geo([r.tecomp_s for r in ran]))} | {_ms(_geo([r.ort_s for r in ran]))} | "
                     f"{_geo([r.ratio for r in ran]):.2f} |" + more)
    return lines


def _kernel_shapes(step: dict, graph: dict) -> str:
    """``inputs -> output`` shapes of a step's anchor: its first node that is not a layout transform."""
    if not step.get("nodes"):
        return "-"
    nodes = {node["name"]: node for node in graph["nodes"]}
    kernel = [nodes[name] for name in step["nodes"]]
    anchor = next((n for n in kernel if n["op"] != "layout_transform"), kernel[0])

    def shape(value: str) -> str:
        return "x".join(map(str, graph["types"][value]["shape"])) or "scalar"

    reads = list(anchor["inputs"]) + list(anchor.get("kwinputs", {}).values())
    return f"{', '.join(shape(v) for v in reads)} -> {shape(kernel[-1]['outputs'][0])}"


def profile(net: Network, nthreads: int, records: str | None, top: int) -> None:
    """Print the slowest kernels of one network (op, shapes, ms, share) and the time per kernel kind."""
    onnx_path, inputs_path = export(net)
    inputs = load_inputs(inputs_path)
    module, seconds = build_network(*import_network(onnx_path, inputs), records)
    with threads(nthreads):
        steps = module.profile(**inputs, repeat=20)
    graph = module.info["graph"]
    total = sum(s.seconds for s in steps) or 1.0
    print(f"{net.name}: {len(steps)} steps, {total * 1e3:.3f} ms in all (median of 20 runs, {nthreads} "
          f"thread(s)), compiled in {seconds:.1f} s")
    print("| kernel | anchor inputs -> output (blocked layouts as stored) | ms | share |\n|---|---|---:|---:|")
    shown = sorted(zip(steps, module.steps), key=lambda pair: -pair[0].seconds)[:top]
    for timing, step in shown:
        print(f"| {timing.label} | {_kernel_shapes(step, graph)} | {timing.seconds * 1e3:.3f} | "
              f"{timing.seconds / total:.1%} |")
    per_kind: dict[str, list[float]] = {}
    for s in steps:
        per_kind.setdefault(s.label if not s.label.startswith("copy") else "copy", []).append(s.seconds)
    print("\nper kernel kind (calls, ms, share):")
    for kind, times in sorted(per_kind.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {kind:<48s} {len(times):4d} {sum(times) * 1e3:9.3f} ms {sum(times) / total:6.1%}")
    ort = ort_op_seconds(onnx_path.read_bytes(), inputs, nthreads)
    ort_total = sum(ort.values()) or 1.0
    print(f"\nonnxruntime per operator type ({ort_total * 1e3:.3f} ms in all by its profiler, which adds "
          f"its own overhead):")
    for op, seconds in sorted(ort.items(), key=lambda kv: -kv[1]):
        print(f"  {op:<48s}      {seconds * 1e3:9.3f} ms {seconds / ort_total:6.1%}")


def cpu_name() -> str:
    """The CPU's model name (as ``lscpu`` prints it), else the platform's machine name."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for tecomp and onnxruntime (default 1)")
    parser.add_argument("--only", help="comma-separated networks (see --list)")
    parser.add_argument("--export-only", action="store_true", help="export (and cache) the networks, run nothing")
    parser.add_argument("--force-export", action="store_true", help="export again even when cached")
    parser.add_argument("--profile", metavar="NAME", help="print the per-kernel profile of one network")
    parser.add_argument("--top", type=int, default=15, help="kernels shown by --profile (default 15)")
    parser.add_argument("--records", metavar="DB", help="tuning records: a tuned build is timed beside the default")
    parser.add_argument("--budget", type=parse_duration, metavar="TIME",
                        help="tune each network this long first (600, 90s, 10m), into --records (default "
                             "zoo_tuned.db)")
    parser.add_argument("--repeat", type=int, default=5, help="timed measurements per latency (median), "
                        "tecomp's and ORT's taken in turns")
    parser.add_argument("--min-ms", type=float, default=100.0, help="least milliseconds of one measurement")
    parser.add_argument("--list", action="store_true", help="list the networks and exit")
    parser.add_argument("--verbose", action="store_true", help="show the tuner's fallback-config notices")
    args = parser.parse_args()
    if not args.verbose:
        logging.getLogger("tecomp.tuner").setLevel(logging.ERROR)

    if args.list:
        for net in NETWORKS.values():
            print(f"{net.name:<28s} {net.family:<13s} {net.exporter} opset {net.opset}")
        return
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(NETWORKS)
    if args.profile:
        names = [args.profile]
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown network(s) {', '.join(unknown)}; known: {', '.join(NETWORKS)}")
    if args.profile:
        profile(NETWORKS[args.profile], args.threads, args.records, args.top)
        return
    if args.export_only:
        for name in names:
            start = time.perf_counter()
            try:
                path, _ = export(NETWORKS[name], force=args.force_export)
                print(f"{name:<28s} {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s)")
            except Exception as exc:  # noqa: BLE001
                print(f"{name:<28s} export failed: {one_line(exc)}")
        return

    import onnxruntime as ort

    import tecomp
    records = args.records or ("zoo_tuned.db" if args.budget else None)
    budget = f", tuning budget {args.budget:g} s per network" if args.budget else ""
    print(f"zoo on {cpu_name()}, {time.strftime('%Y-%m-%d')}, {args.threads} thread(s), tecomp "
          f"{tecomp.__version__}, onnxruntime {ort.__version__}; records: {records or 'none'}{budget}", flush=True)
    rows = []
    for name in names:
        row = measure(NETWORKS[name], args.threads, records, args.repeat, args.min_ms, args.force_export,
                      args.budget)
        rows.append(row)
        print(table([row], bool(records))[2], flush=True)
    print()
    print("\n".join(table(rows, bool(records))))
    failed = [r for r in rows if r.failure]
    if failed:
        print("\nfailures in full:")
        for r in failed:
            for line in r.failure or ():
                print(f"  {r.name}: {line}")


if __name__ == "__main__":
    main()
