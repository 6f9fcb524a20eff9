"""Machine-learned models in a selection: ONNX files with an input contract, run by onnxruntime.

A selection file may declare models under ``models`` (schema ``selection.schema.json``,
``$defs/model``). Each declaration is a *contract*, in the spirit of the Les Houches guide to
reusable ML models (SciPost Phys. Comm. Rep. 3): it says exactly what the published file
expects, so that recastflow can refuse a file or a description that does not match.

``file`` / ``sha256``
    the ONNX file (relative to the selection file's folder, or ``source:<name>`` for a published
    file declared in the selection's ``sources``, fetched through :mod:`recastflow.analyses.fetch`
    from the cache, a mirror folder or its origin) and its SHA-256; a different file is refused.
``opset`` / ``onnxruntime``
    the default-domain opset of the file and the onnxruntime version the contract (and its
    validation vectors) were checked with; the opset must match the file, the runtime
    version is recorded and compared by the validation-vector check.
``inputs``
    one entry per input tensor: its ``tensor`` name, the ordered ``variables`` (each a
    ``name``, an ``expression`` of the selection language, a ``unit``, and for per-object
    expressions such as ``jets.pt`` a ``pad: {length, value}`` that turns them into ``length``
    columns, the first objects of each event) and the ``scaling``: ``{offset: [...], scale:
    [...]}`` (the network sees ``(x - offset) / scale``), ``{file: ..._variables.json}`` (the
    ATLAS/lwtnn-style file listing the variable names in order with their offset and scale;
    the contract's names must be the same, in the same order) or ``none`` (said explicitly,
    e.g. for a BDT, which needs no standardisation).
``output``
    the output tensor ``name`` and the ``index`` of the score in its last axis (e.g. 1 for
    the signal probability of a two-class classifier).
``vectors``
    optional: the file of technical validation vectors (input rows and expected scores),
    written once with ``recastflow model-vectors --write`` and checked with ``recastflow
    model-check``.
``surrogate``
    optional: ``{replaces: ..., note: ...}`` marks a surrogate network trained to stand in for
    a model whose inputs cannot be reproduced outside the experiment (it is run like any
    other; the mark is carried into the cutflow and the selected events' header).

The model's score is then a per-event number named like the model, usable in cuts and bins.
It is computed on the events that reach the first cut using it, in batches of
:data:`BATCH_ROWS` rows per ``InferenceSession.run`` call; an event with a missing input
(NaN, e.g. a fourth jet that is not there) is not evaluated and gets a missing score (every
comparison with it is False). Models are read with ``onnx`` (protobuf) and never through
pickle; sessions use one thread (the workflow runs jobs side by side).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recastflow.core.errors import RecastError
from recastflow.core.io import input_path, sha256_file

if TYPE_CHECKING:
    from recastflow.select.selection import Selection

#: Rows per onnxruntime call: large enough that the per-call overhead vanishes, small enough
#: that the input stays in the caches.
BATCH_ROWS = 1 << 14
VECTORS_FORMAT = "recastflow-model-vectors/1"
#: Default tolerance of the validation vectors (absolute, on the score).
DEFAULT_ATOL = 1e-6


@dataclass(frozen=True)
class InputVariable:
    """One input of a model: a named expression, its unit and (for per-object values) its padding."""

    name: str
    expression: Any  # recastflow.select.expressions.Expression
    unit: str
    pad_length: int | None = None
    pad_value: float = 0.0

    @property
    def width(self) -> int:
        """Number of input columns this variable fills."""
        return self.pad_length or 1

    @property
    def columns(self) -> list[str]:
        """Column names (``jets_pt[0]``... for padded variables)."""
        if self.pad_length is None:
            return [self.name]
        return [f"{self.name}[{i}]" for i in range(self.pad_length)]


@dataclass(frozen=True)
class TensorInput:
    """One input tensor: its name, ordered variables and standardisation."""

    tensor: str
    variables: tuple[InputVariable, ...]
    offset: np.ndarray | None = field(default=None, repr=False)
    scale: np.ndarray | None = field(default=None, repr=False)

    @property
    def width(self) -> int:
        """Number of columns of the tensor."""
        return sum(v.width for v in self.variables)

    @property
    def columns(self) -> list[str]:
        """Column names in tensor order."""
        return [c for v in self.variables for c in v.columns]


@dataclass(frozen=True)
class ModelDef:
    """A checked model contract."""

    name: str
    path: Path
    sha256: str
    opset: int
    onnxruntime: str
    inputs: tuple[TensorInput, ...]
    output: str
    index: int
    vectors: Path | None = None
    surrogate: Mapping[str, str] | None = None
    source: str = ""  # the selection file, for messages

    def evaluate(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of rows given as unscaled input columns (one list per tensor, concatenated).

        Args:
            columns: one float array per column, in the order of :attr:`TensorInput.columns`
                of each input in turn.

        Returns:
            float64 scores; NaN where an input is missing.
        """
        session = _session(str(self.path), self.sha256)
        n = len(columns[0]) if columns else 0
        matrices, start = [], 0
        for tin in self.inputs:
            block = (
                np.column_stack(columns[start : start + tin.width]).astype(np.float64)
                if n
                else np.zeros((0, tin.width))
            )
            start += tin.width
            if tin.offset is not None:
                block = (block - tin.offset) / tin.scale
            matrices.append(block)
        ok = np.ones(n, dtype=bool)
        for m in matrices:
            ok &= np.isfinite(m).all(axis=1)
        out = np.full(n, np.nan)
        rows = np.flatnonzero(ok)
        dtypes = _input_dtypes(session)
        for lo in range(0, len(rows), BATCH_ROWS):
            part = rows[lo : lo + BATCH_ROWS]
            feed = {
                tin.tensor: np.ascontiguousarray(m[part], dtype=dtypes[tin.tensor])
                for tin, m in zip(self.inputs, matrices)
            }
            result = session.run([self.output], feed)[0]
            out[part] = score_column(result, self.index)
        return out

    def env_function(self) -> Callable[[Any], np.ndarray]:
        """The function computing the score in a selection environment."""

        def score(env: Any) -> np.ndarray:
            return self.evaluate(self.input_columns(env))

        return score

    def input_columns(self, env: Any) -> list[np.ndarray]:
        """The unscaled input columns of the events of ``env``."""
        from recastflow.select.expressions import PerObject

        cols: list[np.ndarray] = []
        with np.errstate(all="ignore"):
            for tin in self.inputs:
                for var in tin.variables:
                    value = env.evaluate(var.expression)
                    if var.pad_length is None:
                        cols.append(np.broadcast_to(np.asarray(value, dtype=np.float64), (env.n_events,)))
                    else:
                        cols.extend(_padded(value, var.pad_length, var.pad_value, env.n_events, PerObject))
        return cols


def score_column(result: Any, index: int) -> np.ndarray:
    """The score element ``index`` of an output: [N] (index 0) or [N, k] (column ``index``)."""
    arr = np.asarray(result)
    if arr.ndim == 1:
        return arr.astype(np.float64)
    return arr.reshape(len(arr), -1)[:, index].astype(np.float64)


def _padded(value: Any, length: int, fill: float, n_events: int, per_object: type) -> list[np.ndarray]:
    """The first ``length`` objects' values of each event as columns, ``fill`` where absent."""
    values, layout = np.asarray(value.values, dtype=np.float64), value.layout
    out = np.full((length, n_events), float(fill))
    local = layout.local_index
    keep = local < length
    out[local[keep], layout.event_index[keep]] = values[keep]
    return list(out)


# --------------------------------------------------------------------------- onnxruntime


@lru_cache(maxsize=32)
def _session(path: str, sha256: str) -> Any:
    """One InferenceSession per file and content (single-threaded, sequential execution)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise RecastError(f"onnxruntime cannot load the model: {' '.join(str(exc).split())[:300]}", path=path) from None


def session_for(model: ModelDef) -> Any:
    """The (cached) onnxruntime session of a model."""
    return _session(str(model.path), model.sha256)


_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def _input_dtypes(session: Any) -> dict[str, Any]:
    return {i.name: _ORT_TYPES.get(i.type, np.float32) for i in session.get_inputs()}


def runtime_version() -> str:
    """The installed onnxruntime version."""
    import onnxruntime as ort

    return str(ort.__version__)


# --------------------------------------------------------------------------- reading a contract


@dataclass(frozen=True)
class FileInfo:
    """What an ONNX file says about itself (read with ``onnx``, protobuf only)."""

    producer: str
    ir_version: int
    opsets: dict[str, int]
    inputs: list[tuple[str, str, list[Any]]]  # name, element type, shape (int or symbolic name)
    outputs: list[tuple[str, str, list[Any]]]


def file_info(path: Path) -> FileInfo:
    """Read an ONNX file's header: producer, IR version, opsets, input and output tensors.

    Raises:
        RecastError: if the file is not a valid ONNX model.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises protobuf DecodeError, ValidationError, ...
        raise RecastError(f"not a valid ONNX model: {' '.join(str(exc).split())[:200]}", path=str(path)) from None

    def tensors(values: Any) -> list[tuple[str, str, list[Any]]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            elem = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
            out.append((v.name, elem, shape))
        return out

    initializers = {i.name for i in model.graph.initializer}
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return FileInfo(
        producer,
        int(model.ir_version),
        {o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
        tensors([i for i in model.graph.input if i.name not in initializers]),
        tensors(model.graph.output),
    )


def build_model(
    name: str,
    spec: Mapping[str, Any],
    *,
    source: str,
    compile_input: Callable[[str, str], Any],
    numeric: Callable[[Any], str],
    sources: Mapping[str, Any] | None = None,
) -> ModelDef:
    """Check a model contract against its file and compile its input expressions.

    Args:
        name: the model's name in the selection.
        spec: its (schema-validated) contract.
        source: the selection file (paths are relative to its folder; named in messages).
        compile_input: compiles an input expression for a field of the selection file.
        numeric: "number", "per-object" or a description of another kind, for an expression.
        sources: the selection's ``sources`` (:class:`recastflow.analyses.fetch.Source` by name); a
            ``file`` written ``source:<name>[/<member>]`` is fetched through them (cache, mirror,
            network) before the contract's own sha256 check.

    Raises:
        RecastError: one line naming the selection file and the contract field.
    """
    from recastflow.core.config import inside

    where = f"models.{name}"
    folder = Path(source).parent
    sources = dict(sources or {})

    def fail(message: str, key: str = "") -> RecastError:
        return RecastError(message, path=source, field=f"{where}.{key}" if key else where)

    path = model_file(spec["file"], folder, sources, source=source, field=f"{where}.file")
    if os.path.lexists(path):  # a folder or a named pipe: one line naming the contract, not a blocked read
        input_path(path, source=source, field=f"{where}.file")
    if not path.is_file():
        raise fail(f"model file {spec['file']!r} not found (looked in {folder})", "file")
    digest = sha256_file(path)
    if digest != spec["sha256"].lower():
        raise fail(
            f"{spec['file']} has sha256 {digest}, the contract says {spec['sha256']}: not the file the "
            "contract describes (replace the file or, if it really is the published one, the sha256)",
            "sha256",
        )
    info = file_info(path)
    opset = info.opsets.get("ai.onnx")
    if opset != spec["opset"]:
        raise fail(f"the file uses opset {opset}, the contract says {spec['opset']}", "opset")
    file_inputs = {n: shape for n, _, shape in info.inputs}
    inputs = []
    seen: set[str] = set()
    for i, tspec in enumerate(spec["inputs"]):
        key = f"inputs[{i}]"
        tensor = tspec["tensor"]
        if tensor not in file_inputs:
            raise fail(f"the file has no input tensor {tensor!r} (inputs: {', '.join(file_inputs)})", f"{key}.tensor")
        if tensor in seen:
            raise fail(f"input tensor {tensor!r} is declared twice", f"{key}.tensor")
        seen.add(tensor)
        variables = tuple(
            _variable(v, f"{key}.variables[{j}]", compile_input, numeric, fail)
            for j, v in enumerate(tspec["variables"])
        )
        names = [v.name for v in variables]
        if len(set(names)) != len(names):
            raise fail(f"an input variable name is used twice: {names}", f"{key}.variables")
        width = sum(v.width for v in variables)
        shape = file_inputs[tensor]
        if len(shape) != 2:
            raise fail(
                f"input {tensor!r} has shape {shape}; only [batch, features] inputs are supported", f"{key}.tensor"
            )
        if isinstance(shape[1], int) and shape[1] != width:
            raise fail(
                f"{width} input columns declared but the file's input {tensor!r} takes {shape[1]} (shape {shape})",
                f"{key}.variables",
            )
        offset, scale = _scaling(tspec["scaling"], names, width, folder, source, f"{key}.scaling", fail, sources)
        inputs.append(TensorInput(tensor, variables, offset, scale))
    missing = sorted(set(file_inputs) - seen)
    if missing:
        raise fail(f"the file's input tensor(s) {', '.join(map(repr, missing))} are not declared", "inputs")
    outputs = {n: shape for n, _, shape in info.outputs}
    out = spec["output"]
    if out["name"] not in outputs:
        raise fail(f"the file has no output {out['name']!r} (outputs: {', '.join(outputs)})", "output.name")
    shape = outputs[out["name"]]
    index = int(out.get("index", 0))
    size = shape[-1] if len(shape) >= 2 else 1
    if isinstance(size, int) and not 0 <= index < size:
        raise fail(
            f"output {out['name']!r} has shape {shape}: index must be in 0..{size - 1}, got {index}", "output.index"
        )
    vectors = (
        inside(folder, spec["vectors"], source=Path(source), field=f"{where}.vectors") if "vectors" in spec else None
    )
    return ModelDef(
        name,
        path,
        digest,
        int(spec["opset"]),
        str(spec["onnxruntime"]),
        tuple(inputs),
        out["name"],
        index,
        vectors,
        spec.get("surrogate"),
        source,
    )


def model_file(text: str, folder: Path, sources: dict[str, Any], *, source: str, field: str) -> Path:
    """The path of a file a contract names: relative to the selection's folder, or a fetched ``source:``.

    Published models are not committed: the selection's ``sources`` say where they come from and
    their sha256, and the fetch layer (:mod:`recastflow.analyses.fetch`) puts them in the cache from
    a mirror folder or their origin, so every command and job that loads the contract has them.
    """
    from recastflow.analyses.bundle import fetched_path

    return fetched_path(text, folder, sources, source=Path(source), field=field)


def _variable(
    spec: Mapping[str, Any],
    key: str,
    compile_input: Callable[[str, str], Any],
    numeric: Callable[[Any], str],
    fail: Callable[[str, str], RecastError],
) -> InputVariable:
    expr = compile_input(spec["expression"], f"{key}.expression")
    kind = numeric(expr)
    pad = spec.get("pad")
    if kind == "number":
        if pad is not None:
            raise fail("'pad' is only for per-object expressions such as 'jets.pt'", f"{key}.pad")
        return InputVariable(spec["name"], expr, spec["unit"])
    if kind == "per-object":
        if pad is None:
            raise fail(
                "a per-object expression needs 'pad: {length: N, value: V}' (the first N objects, V where "
                "there are fewer)",
                f"{key}.pad",
            )
        return InputVariable(spec["name"], expr, spec["unit"], int(pad["length"]), float(pad["value"]))
    raise fail(f"an input must be a number per event (or per object, with 'pad'); got {kind}", f"{key}.expression")


def _scaling(
    spec: Any,
    names: list[str],
    width: int,
    folder: Path,
    source: str,
    key: str,
    fail: Callable[[str, str], RecastError],
    sources: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Offset and scale arrays (or None for ``none``), checked against the variables."""
    from recastflow.core.config import read_document

    if spec == "none":
        return None, None
    if "file" in spec:
        path = model_file(spec["file"], folder, dict(sources or {}), source=source, field=f"{key}.file")
        doc = read_document(path)
        if not isinstance(doc, dict) or not all(k in doc for k in ("variables", "offset", "scale")):
            raise fail(f"{spec['file']} must have 'variables', 'offset' and 'scale' lists", f"{key}.file")
        if list(doc["variables"]) != names:
            diff = next(
                (i for i, (a, b) in enumerate(zip(doc["variables"], names)) if a != b),
                min(len(names), len(doc["variables"])),
            )
            raise fail(
                f"the inputs do not match {spec['file']}: it lists {len(doc['variables'])} variables "
                f"{doc['variables']}, the contract {len(names)}; first difference at position {diff}",
                key.rsplit(".", 1)[0] + ".variables",
            )
        offset, scale = doc["offset"], doc["scale"]
        where = f"{key}.file"
    else:
        offset, scale = spec["offset"], spec["scale"]
        where = key
    if len(offset) != width or len(scale) != width:
        raise fail(
            f"offset and scale need one value per input column ({width}), got {len(offset)} and {len(scale)}", where
        )
    off, sc = np.asarray(offset, dtype=np.float64), np.asarray(scale, dtype=np.float64)
    if not (np.isfinite(off).all() and np.isfinite(sc).all() and (sc != 0).all()):
        raise fail("offset and scale must be finite, and scale non-zero", where)
    return off, sc


# --------------------------------------------------------------------------- validation vectors


@dataclass(frozen=True)
class VectorCheck:
    """The result of checking one model's validation vectors."""

    model: str
    file: Path
    rows: int
    max_abs_dev: float
    worst_row: int
    atol: float
    written_with: str
    running: str

    @property
    def passed(self) -> bool:
        """Whether every score agrees within the tolerance."""
        return self.max_abs_dev <= self.atol


def vectors_doc(model: ModelDef, inputs: np.ndarray, *, atol: float, events: Sequence[str]) -> dict[str, Any]:
    """A validation-vectors document: input rows (unscaled), expected scores, versions.

    Args:
        model: the model.
        inputs: rows x columns, unscaled, in contract order, all finite.
        atol: the absolute tolerance on the score.
        events: the event files the rows come from (recorded).
    """
    columns = [c for t in model.inputs for c in t.columns]
    scores = model.evaluate(list(inputs.T)) if len(inputs) else np.zeros(0)
    return {
        "format": VECTORS_FORMAT,
        "model": model.name,
        "file": model.path.name,
        "sha256": model.sha256,
        "onnxruntime": runtime_version(),
        "opset": model.opset,
        "atol": atol,
        "columns": columns,
        "output": {"name": model.output, "index": model.index},
        "events": list(events),
        "inputs": [[float(x) for x in row] for row in inputs],
        "expected": [float(s) for s in scores],
    }


def check_vectors(model: ModelDef) -> VectorCheck:
    """Re-run a model on its validation vectors and measure the largest deviation.

    Raises:
        RecastError: if the model has no vectors file or it does not belong to this model.
    """
    from recastflow.core.config import read_document

    if model.vectors is None:
        raise RecastError("the contract names no 'vectors' file", path=model.source, field=f"models.{model.name}")
    doc = read_document(model.vectors)
    where = str(model.vectors)
    if not isinstance(doc, dict) or doc.get("format") != VECTORS_FORMAT:
        raise RecastError(f"not a {VECTORS_FORMAT} file", path=where, field="format")
    if doc.get("sha256") != model.sha256:
        raise RecastError(
            f"written for a model file with sha256 {doc.get('sha256')}, not {model.sha256}; "
            "rewrite it from a trusted run (recastflow model-vectors --write)",
            path=where,
            field="sha256",
        )
    columns = [c for t in model.inputs for c in t.columns]
    if doc.get("columns") != columns:
        raise RecastError(
            f"columns {doc.get('columns')} differ from the contract's {columns}", path=where, field="columns"
        )
    inputs = np.asarray(doc["inputs"], dtype=np.float64).reshape(-1, len(columns))
    expected = np.asarray(doc["expected"], dtype=np.float64)
    if len(expected) != len(inputs) or not len(inputs):
        raise RecastError(
            f"{len(inputs)} input rows and {len(expected)} expected scores; need the same, and some",
            path=where,
            field="expected",
        )
    scores = model.evaluate(list(inputs.T))
    dev = np.abs(scores - expected)
    dev = np.where(np.isnan(dev), np.inf, dev)  # a score that became missing is the worst deviation
    worst = int(np.argmax(dev))
    return VectorCheck(
        model.name,
        model.vectors,
        len(inputs),
        float(dev[worst]),
        worst,
        float(doc.get("atol", DEFAULT_ATOL)),
        str(doc.get("onnxruntime")),
        runtime_version(),
    )


def format_checks(checks: Sequence[VectorCheck]) -> str:
    """A fixed-width table of vector checks."""
    lines = [f"{'model':<24} {'rows':>6} {'max |dev|':>11} {'atol':>9} {'written with':>13} {'running':>9}  result"]
    for c in checks:
        dev = "inf" if math.isinf(c.max_abs_dev) else f"{c.max_abs_dev:.3g}"
        lines.append(
            f"{c.model:<24} {c.rows:>6} {dev:>11} {c.atol:>9.3g} {c.written_with:>13} {c.running:>9}  "
            f"{'ok' if c.passed else f'FAILED (row {c.worst_row})'}"
        )
    return "\n".join(lines)


def checks_json(checks: Sequence[VectorCheck]) -> list[dict[str, Any]]:
    """Checks as JSON records."""
    return [
        {
            "model": c.model,
            "file": str(c.file),
            "rows": c.rows,
            "max_abs_dev": c.max_abs_dev,
            "worst_row": c.worst_row,
            "atol": c.atol,
            "written_with": c.written_with,
            "running": c.running,
            "passed": c.passed,
        }
        for c in checks
    ]


# --------------------------------------------------------------------------- the models of a selection file


def selection_models(selection_path: Path | str, names: Sequence[str] | None) -> tuple[Selection, list[ModelDef]]:
    """Load a selection file and pick models it declares.

    Args:
        selection_path: the selection file (named as given in messages).
        names: the models wanted, in this order; ``None`` or empty for every model of the selection.

    Returns:
        The selection and the models.

    Raises:
        RecastError: the selection declares no models, or not one of ``names``.
    """
    from recastflow.select.selection import load_selection

    selection = load_selection(Path(selection_path))
    models = list(selection.models)
    if not models:
        raise RecastError("the selection declares no 'models'", path=str(selection_path))
    if names:
        known = {m.name: m for m in models}
        for name in names:
            if name not in known:
                raise RecastError(
                    f"no model {name!r} (models: {', '.join(known)})", path=str(selection_path), field="models"
                )
        models = [known[n] for n in names]
    return selection, models


def write_vectors(
    selection_path: Path | str,
    names: Sequence[str] | None,
    events: Sequence[Path | str],
    *,
    max_rows: int,
    atol: float,
    overwrite: bool,
    log: Callable[[str], None],
) -> list[Path]:
    """Write models' validation vectors from reconstructed events of a trusted run (``recastflow model-vectors``).

    Vectors are written once: later runs check the models against them, so existing vectors are kept
    unless ``overwrite`` says otherwise.

    Args:
        selection_path: the selection file declaring the models (named as given in messages).
        names: the models, or ``None``/empty for all.
        events: ``recastflow-reco/1`` event files (named as given in messages).
        max_rows: input rows per model, the first that pass the preselection with every input present.
        atol: the absolute tolerance on the score, recorded with the vectors.
        overwrite: replace existing vectors files.
        log: gets one line per model.

    Returns:
        The vectors files written.

    Raises:
        RecastError: a contract names no vectors file, its file exists (without ``overwrite``), or no event
            gives a model all its inputs.
    """
    from recastflow.core.events import RECO, merge_events
    from recastflow.core.io import write_json_atomic
    from recastflow.select.selection import model_inputs

    selection, models = selection_models(selection_path, names)
    reco, _ = merge_events([Path(p) for p in events], (RECO,))
    written = []
    for model in models:
        if model.vectors is None:
            raise RecastError(
                "the contract names no 'vectors' file to write", path=str(selection_path), field=f"models.{model.name}"
            )
        if model.vectors.exists() and not overwrite:
            raise RecastError(
                f"{model.vectors} exists: validation vectors are written once, from a trusted run "
                "(--overwrite replaces them)",
                path=str(selection_path),
                field=f"models.{model.name}.vectors",
            )
        rows = model_inputs(reco, selection, model)[:max_rows]
        if not len(rows):
            raise RecastError(
                f"no event of {', '.join(map(str, events))} passes the preselection with all inputs of "
                f"{model.name} present",
                path=str(selection_path),
                field=f"models.{model.name}",
            )
        doc = vectors_doc(model, np.asarray(rows), atol=atol, events=[str(p) for p in events])
        write_json_atomic(model.vectors, doc)
        log(f"{model.name}: {len(rows)} validation vectors -> {model.vectors}")
        written.append(model.vectors)
    return written


# --------------------------------------------------------------------------- inspection


def inspect_lines(path: Path, model: ModelDef | None = None, spec: Mapping[str, Any] | None = None) -> list[str]:
    """A human-readable description of an ONNX file and, given a contract, their agreement.

    Args:
        path: the ONNX file.
        model: the checked contract (if it loaded), or None.
        spec: the raw contract (to compare even when it failed to load), or None.
    """
    info = file_info(path)
    lines = [
        f"file      {path}",
        f"sha256    {sha256_file(path)}",
        f"producer  {info.producer or '(not recorded)'}",
        f"IR        {info.ir_version}",
        "opsets    " + ", ".join(f"{d} {v}" for d, v in sorted(info.opsets.items())),
    ]
    for n, t, s in info.inputs:
        lines.append(f"input     {n}: {t} {s}")
    for n, t, s in info.outputs:
        lines.append(f"output    {n}: {t} {s}")
    if model is not None:
        lines.append(f"contract  {model.name}: sha256, opset {model.opset}, inputs and output agree with the file")
        for tin in model.inputs:
            scal = "none" if tin.offset is None else "(x - offset) / scale"
            lines.append(f"  tensor {tin.tensor}: {tin.width} columns, scaling {scal}")
            for k, var in enumerate(tin.variables):
                extra = f", padded to {var.pad_length} with {var.pad_value:g}" if var.pad_length else ""
                sc = (
                    ""
                    if tin.offset is None or tin.scale is None or var.pad_length
                    else f"  offset {tin.offset[k]:.6g} scale {tin.scale[k]:.6g}"
                )
                lines.append(f"    {k:>2} {var.name:<16} [{var.unit}] {var.expression.text}{extra}{sc}")
        lines.append(
            f"  score: output {model.output}[..., {model.index}]; validated with onnxruntime "
            f"{model.onnxruntime} (running {runtime_version()})"
        )
        if model.surrogate:
            lines.append(f"  surrogate for: {model.surrogate.get('replaces', '')}")
    elif spec is not None:
        lines.append("contract  does NOT agree with the file (see the error above)")
    return lines
