"""One compiled likelihood per workspace structure, shared by every point of a grid.

The points of a grid share the published background-only workspace and differ only in
the numbers of the signal sample. pyhf builds one model per point, and with its JAX
backend every new model is a new trace and XLA compilation (seconds each), so JAX gains
nothing on a grid. Here the pyhf model of the first point is traced once, with every
floating-point array the model holds and its ``logpdf`` reads (nominal rates, interpolation
coefficients, constraint widths, ...) turned into an *input* of the compiled function. Each later
point is built by pyhf as usual (numpy backend, no compilation) and hands its own arrays
to the same executable. The function that is compiled is pyhf's own ``logpdf``; nothing
about the likelihood is re-implemented.

Correctness does not rest on knowing pyhf's internals: before a point is used, the
compiled value is compared with that point's own numpy ``logpdf`` at two parameter
vectors (relative 1e-10, or the rounding error of the likelihood's terms where that is
larger: see :func:`guard_tolerance`). A point whose model holds something the trace baked in as a
constant fails that check and gets a structure of its own (compiled from its model).

Published grids often give each point's signal its own subset of the analysis's
systematics (ATLAS-SUSY-2019-08 drops the normalisation uncertainties that are negligible
for that point), which would make every point its own structure. :func:`pad_null_modifiers`
gives the signal sample every ``normsys`` and ``histosys`` the model already has, with no
effect (``hi = lo = 1``; ``hi_data = lo_data = nominal``): the parameters, constraints and
likelihood are unchanged, and such points share one structure. A limits job pads each point
also with the names the points before it had (:meth:`LikelihoodCompiler.pad`), so a
systematic only some signals carry does not split the grid either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyhf
import scipy.special

from recastflow.core.errors import RecastError
from recastflow.core.io import cache_root

#: Agreement required between the compiled and pyhf's own -2 log L before a point is used.
GUARD_RTOL = 1e-10


class CompileMismatch(RecastError):
    """The compiled likelihood does not reproduce a point's pyhf model."""


def null_modifier_names(spec: dict[str, Any]) -> dict[str, set[str]]:
    """The names of the ``normsys`` and ``histosys`` modifiers of a specification, by type."""
    names: dict[str, set[str]] = {"normsys": set(), "histosys": set()}
    for channel in spec["channels"]:
        for sample in channel["samples"]:
            for mod in sample["modifiers"]:
                if mod["type"] in names:
                    names[mod["type"]].add(mod["name"])
    return names


def pad_null_modifiers(spec: dict[str, Any], also: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """Give every signal sample each ``normsys``/``histosys`` of the workspace it lacks, with no effect.

    A signal sample is one that carries the normfactor of the first measurement's parameter of
    interest. A ``normsys`` with ``hi = lo = 1`` multiplies by exactly 1 and a ``histosys`` whose
    templates equal the nominal adds exactly 0 under every interpolation code, for every value of
    its parameter; the names added already exist as parameters constrained by a unit Gaussian
    (as a ``normsys`` or a ``histosys``, which pyhf lets share a parameter), so the model's
    parameters and its likelihood are the same. Padding can only add modifiers, never a sample
    or a parameter. The input is not modified.

    Args:
        spec: a pyhf workspace specification.
        also: more names to pad with, by type (those other points of a grid have), used only
            where the name is already a ``normsys`` or ``histosys`` parameter of ``spec``.

    Returns:
        The padded specification (channels rebuilt, everything else shared with ``spec``).
    """
    measurements = spec.get("measurements") or []
    poi = measurements[0]["config"]["poi"] if measurements else None
    names = null_modifier_names(spec)
    gaussian = names["normsys"] | names["histosys"]
    for kind, more in (also or {}).items():
        names[kind] = names[kind] | (set(more) & gaussian)
    channels = []
    for channel in spec["channels"]:
        samples = []
        for sample in channel["samples"]:
            mods = sample["modifiers"]
            if poi is None or not any(m["type"] == "normfactor" and m["name"] == poi for m in mods):
                samples.append(sample)
                continue
            have = {(m["type"], m["name"]) for m in mods}
            nominal = list(sample["data"])
            extra: list[dict[str, Any]] = [
                {"name": n, "type": "normsys", "data": {"hi": 1.0, "lo": 1.0}}
                for n in sorted(names["normsys"])
                if ("normsys", n) not in have
            ]
            extra += [
                {"name": n, "type": "histosys", "data": {"hi_data": nominal, "lo_data": nominal}}
                for n in sorted(names["histosys"])
                if ("histosys", n) not in have
            ]
            samples.append(dict(sample, modifiers=[*mods, *extra]) if extra else sample)
        channels.append(dict(channel, samples=samples))
    return dict(spec, channels=channels)


def _jax():  # -> module
    # imported on first use: the exact (numpy) mode and the rest of the package do not need JAX
    import jax

    jax.config.update("jax_enable_x64", True)
    # XLA's compilation is most of a short limits job (2.2 of 5 s for one 1Lbb point), and every job of a grid
    # or an adaptive scan compiles the same structure again: JAX's persistent cache keeps the executables
    # (keyed by the program, the JAX version and the machine) in recastflow's cache, and a job that finds its
    # structure there skips the compilation. The numbers are the same bytes either way, so a cache that
    # cannot be written is simply not used.
    if jax.config.jax_compilation_cache_dir is None:
        folder = cache_root() / "jax"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return jax
        jax.config.update("jax_compilation_cache_dir", str(folder))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return jax


@dataclass(frozen=True)
class _Slot:
    """Where a floating-point array sits inside a pyhf model: a path of items/attributes."""

    path: tuple[Any, ...]
    attr: str


def _children(obj: Any) -> list[tuple[Any, Any]]:
    if isinstance(obj, (list, tuple)):
        return list(enumerate(obj))
    if isinstance(obj, dict):
        return list(obj.items())
    if (type(obj).__module__ or "").startswith("pyhf") and hasattr(obj, "__dict__"):
        return list(vars(obj).items())
    return []


def _find_slots(model: pyhf.pdf.Model) -> list[_Slot]:
    """Every floating-point array held as an attribute of a pyhf object inside the model."""
    slots: list[_Slot] = []
    seen: set[int] = set()

    def walk(obj: Any, path: tuple[Any, ...]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        is_object = not isinstance(obj, (list, tuple, dict))
        for key, value in _children(obj):
            if isinstance(value, np.ndarray):
                # arrays inside lists are pyhf's raw inputs, turned into attributes before use
                if is_object and value.dtype.kind == "f":
                    slots.append(_Slot(path, key))
            else:
                walk(value, (*path, key))

    walk(model, ())
    return slots


def _resolve(model: Any, path: tuple[Any, ...]) -> Any:
    obj = model
    for key in path:
        obj = obj[key] if isinstance(obj, (list, tuple, dict)) else getattr(obj, key)
    return obj


def structure_key(model: pyhf.pdf.Model) -> str:
    """A digest of a model's layout (parameters, channels, modifiers, number of samples), not its numbers.

    Sample names are left out: a grid names its signal sample after the point.
    """
    cfg = model.config
    desc = {
        "pars": [(name, cfg.param_set(name).n_parameters) for name in cfg.par_order],
        "poi": cfg.poi_name,
        "channels": [(c, cfg.channel_nbins[c]) for c in cfg.channels],
        "samples": len(cfg.samples),
        "modifiers": [list(m) for m in cfg.modifiers],
        "aux": cfg.nauxdata,
        "batch": model.batch_size,
    }
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()


@dataclass
class _Executable:
    slots: list[_Slot]
    shapes: list[tuple[int, ...]]
    value_and_grad: Callable[..., Any]
    #: per-parameter scale for the fits (see :attr:`Objective.scale`), learnt by the first point's fits
    scale: np.ndarray | None = None


def _twice_nll_with(
    model: pyhf.pdf.Model, owners: list[Any], slots: list[_Slot], values: list[Any], pars: Any, obs: Any
) -> Any:
    """pyhf's -2 log L of ``model`` with the arrays at ``slots`` replaced by ``values`` (restored after)."""
    saved = [getattr(o, s.attr) for o, s in zip(owners, slots)]
    try:
        for o, s, value in zip(owners, slots, values):
            setattr(o, s.attr, value)
        return -2.0 * model.logpdf(pars, obs)[0]
    finally:
        for o, s, value in zip(owners, slots, saved):
            setattr(o, s.attr, value)


def _read_by_logpdf(
    model: pyhf.pdf.Model, data: np.ndarray, owners: list[Any], slots: list[_Slot], arrays: list[np.ndarray]
) -> list[bool]:
    """Which of the arrays pyhf's ``logpdf`` reads (under the JAX backend, already set by the caller)."""
    jax = _jax()
    jnp = jax.numpy

    def twice_nll(values: list[Any], pars: Any, obs: Any) -> Any:
        return _twice_nll_with(model, owners, slots, values, pars, obs)

    pars = jnp.asarray(model.config.suggested_init(), dtype=jnp.float64)
    obs = jnp.asarray(data, dtype=jnp.float64)
    jaxpr = jax.make_jaxpr(twice_nll)([jnp.asarray(a) for a in arrays], pars, obs).jaxpr
    # an input is read if any equation takes it (an equation calling a sub-computation counts, whether or
    # not that one uses it: the count can only be too large, never too small)
    taken = {id(v) for eqn in jaxpr.eqns for v in eqn.invars} | {id(v) for v in jaxpr.outvars}
    return [id(v) in taken for v in jaxpr.invars[: len(arrays)]]


def _compile(model: pyhf.pdf.Model, data: np.ndarray) -> _Executable:
    """Trace pyhf's -2 log L of ``model`` with its arrays as inputs and compile value and gradient."""
    jax = _jax()
    jnp = jax.numpy
    slots = _find_slots(model)
    owners = [_resolve(model, s.path) for s in slots]
    previous = pyhf.get_backend()
    # pyhf's tensor code must run on JAX while tracing. Switching backends normally makes every live
    # model convert all its arrays (eager JAX operations, each compiled: seconds, more the more models
    # a grid job holds); the trace does not need that, since every array it reads is an input or a
    # constant numpy array that JAX takes as it is.
    pyhf.events.disable("tensorlib_changed")
    pyhf.set_backend("jax", precision="64b")
    try:
        arrays = [np.asarray(getattr(o, s.attr), dtype=float) for o, s in zip(owners, slots)]
        # pyhf's objects also keep arrays logpdf never reads (the numpy originals of backend copies, values
        # only used while building): inputs of those would be carried on every call for nothing (1Lbb: 453k
        # numbers, of which 201k are read; each call 20% slower, the compilation twice as long)
        read = _read_by_logpdf(model, data, owners, slots, arrays)
        slots = [s for s, r in zip(slots, read) if r]
        owners = [o for o, r in zip(owners, read) if r]
        arrays = [a for a, r in zip(arrays, read) if r]
        shapes = [a.shape for a in arrays]
        bounds = np.cumsum([0] + [a.size for a in arrays])

        def twice_nll(flat: Any, pars: Any, obs: Any) -> Any:
            # one flat input instead of dozens keeps the per-call dispatch cost low
            values = [flat[lo:hi].reshape(shape) for shape, lo, hi in zip(shapes, bounds[:-1], bounds[1:])]
            return _twice_nll_with(model, owners, slots, values, pars, obs)

        flat0 = jnp.asarray(np.concatenate([a.ravel() for a in arrays]))
        x0 = jnp.asarray(model.config.suggested_init(), dtype=jnp.float64)
        d0 = jnp.asarray(data, dtype=jnp.float64)
        # a jitted function (not an AOT-compiled executable) dispatches through JAX's C++ fast path, several
        # times cheaper per call; it is traced here, under the JAX backend, by its first call. A later
        # call with other shapes would retrace under numpy and fail loudly, and the guard rejects it first.
        vg = jax.jit(jax.value_and_grad(twice_nll, argnums=1))
        # the few value-only calls (the guard, the Asimov free fit) use this executable too: a second,
        # value-only compilation would cost more than all of them
        jax.block_until_ready(vg(flat0, x0, d0))
    finally:
        pyhf.set_backend(*previous)
        pyhf.events.enable("tensorlib_changed")
    return _Executable(slots, shapes, vg)


class Objective:
    """-2 log L of one point's model and its gradient, evaluated by a shared executable.

    Args:
        executable: the compiled structure.
        state: this point's arrays, flattened in the executable's slot order.
    """

    def __init__(self, executable: _Executable, state: Any) -> None:
        self._exe = executable
        self._state = state
        self.calls = 0

    @property
    def scale(self) -> np.ndarray | None:
        """Typical curvature scale of each parameter, shared by every point of the structure (None until set).

        The points of a structure differ only in their signal, so the shape of the likelihood near its
        minimum (what a fit needs to know to take well-sized steps) is much the same for all of them.
        """
        return self._exe.scale

    @scale.setter
    def scale(self, value: np.ndarray) -> None:
        self._exe.scale = np.asarray(value, dtype=float).copy()

    def as_data(self, data: Any) -> Any:
        """Convert a dataset once, so repeated evaluations do not copy it."""
        return _jax().numpy.asarray(np.asarray(data, dtype=float))

    def value_and_grad(self, pars: np.ndarray, data: Any) -> tuple[float, np.ndarray]:
        """-2 log L and its gradient with respect to every parameter."""
        self.calls += 1
        value, grad = self._exe.value_and_grad(self._state, pars, data)
        return float(value), np.asarray(grad)

    def value(self, pars: np.ndarray, data: Any) -> float:
        """-2 log L."""
        self.calls += 1
        value, _ = self._exe.value_and_grad(self._state, pars, data)
        return float(value)


class LikelihoodCompiler:
    """Compiles one executable per model structure and binds points' models to it.

    ``compiled`` counts compilations, ``bound`` the points served; a grid whose points
    share one structure compiles once.
    """

    def __init__(self) -> None:
        self._cache: dict[str, list[_Executable]] = {}
        self._names: dict[str, set[str]] = {"normsys": set(), "histosys": set()}
        self.compiled = 0
        self.bound = 0

    def pad(self, spec: dict[str, Any]) -> dict[str, Any]:
        """:func:`pad_null_modifiers` with the names of every point padded so far.

        A systematic only some points' signals have (1Lbb: EG_SCALE_AF2 at (300, 150)) would
        otherwise give those points a structure, and a compilation, of their own.
        """
        padded = pad_null_modifiers(spec, self._names)
        for kind, names in null_modifier_names(spec).items():
            self._names[kind] |= names
        return padded

    def objective(self, model: pyhf.pdf.Model, data: Any, source: str = "") -> Objective:
        """The compiled -2 log L of ``model`` (compiling only if no executable reproduces it).

        Args:
            model: a pyhf model built with the numpy backend.
            data: its observed data (observations then auxiliary data).
            source: what the model is (for messages).
        """
        if pyhf.get_backend()[0].name != "numpy":
            raise RecastError("the compiled likelihood needs pyhf's numpy backend for model building")
        data = np.asarray(data, dtype=float)
        key = structure_key(model)
        candidates = self._cache.setdefault(key, [])
        for exe in candidates:
            objective = self._bind(exe, model)
            if objective is not None and _agrees(objective, model, data):
                self.bound += 1
                return objective
        exe = _compile(model, data)
        self.compiled += 1
        objective = self._bind(exe, model)
        if objective is None or not _agrees(objective, model, data):
            raise CompileMismatch(
                f"the compiled likelihood does not reproduce pyhf's for {source or 'this model'}; "
                "use limits method 'exact'"
            )
        candidates.append(exe)
        self.bound += 1
        return objective

    @staticmethod
    def _bind(exe: _Executable, model: pyhf.pdf.Model) -> Objective | None:
        parts = []
        for slot, shape in zip(exe.slots, exe.shapes):
            try:
                value = getattr(_resolve(model, slot.path), slot.attr)
            except (AttributeError, KeyError, IndexError, TypeError):
                return None
            if not isinstance(value, np.ndarray) or value.shape != shape:
                return None
            parts.append(value.astype(float, copy=False).ravel())
        return Objective(exe, _jax().numpy.asarray(np.concatenate(parts)))


def rounding_scale(data: np.ndarray) -> float:
    """Size of the terms of -2 log L for ``data``: what its rounding error is proportional to.

    Every Poisson term is ``n log(lam) - lam - log(n!)``; with large counts (the auxiliary data of a
    ``shapesys`` with a 1e-5 relative uncertainty is tau = 1e10) these are huge numbers that cancel to
    an O(1) result, and two correct implementations (numpy's and XLA's ``log``/``lgamma``) differ by
    a few units of the last place of each term. At the data, where ``lam`` is close to ``n``, the terms
    are ``n (|log n| + 1) + log(n!)``; Gaussian terms are small and covered by the same bound.
    """
    counts = np.asarray(data, dtype=float)
    counts = counts[np.isfinite(counts) & (counts > 0)]
    return float(np.sum(counts * (np.abs(np.log(counts)) + 1.0) + scipy.special.gammaln(counts + 1.0)))


def guard_tolerance(reference: float, scale: float) -> float:
    """Agreement required between the compiled and pyhf's -2 log L.

    Relative :data:`GUARD_RTOL`, or four times the rounding error of the likelihood's own terms
    (:func:`rounding_scale`) where that is larger: measured on workspaces whose ``shapesys``
    uncertainties are 1e-3 to 1e-6 relative, the two implementations differ by 0.08 to 0.3 times
    ``eps * scale`` (a constant offset: the same at every parameter point). A model built from other
    numbers (another point's signal) differs by orders of magnitude more.
    """
    return max(GUARD_RTOL * max(1.0, abs(reference)), 4.0 * float(np.finfo(float).eps) * scale)


def _agrees(objective: Objective, model: pyhf.pdf.Model, data: np.ndarray) -> bool:
    """Compare the compiled -2 log L with the model's own at its start and a shifted point."""
    init = np.asarray(model.config.suggested_init(), dtype=float)
    lo, hi = np.asarray(model.config.suggested_bounds(), dtype=float).T
    # a deterministic point away from the start that moves every parameter (inside its bounds)
    shifted = init + 0.05 * np.where(np.arange(init.size) % 2 == 0, 1.0, -1.0) * np.minimum(hi - init, init - lo).clip(
        0, 1
    )
    dj = objective.as_data(data)
    scale = rounding_scale(data)
    for pars in (init, shifted):
        ours = objective.value(pars, dj)
        ref = float(-2.0 * model.logpdf(pars, data)[0])
        if not (np.isfinite(ours) and abs(ours - ref) <= guard_tolerance(ref, scale)):
            return False
    return True
