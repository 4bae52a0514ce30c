"""Mixed-precision search: the plan with the least output error on calibration data whose estimate fits a
budget (`qonnx-spartan search`, docs/search.md).

Every quantised layer - a module owning a weight or activation quantiser, a plan key - gets one width from
a short list, for its weights and activations together.  The error is the integer reference's output
(bitwidths, lower, run_reference, dequantised) against reference outputs; the resources are the
estimator's.  An integer program (scipy.optimize.milp) picks the widths and where every memory goes:

- the error of a plan is taken as the sum of the modules' sensitivities, each measured with every other
  module at the widest width (close to additive; the chosen plan's real error is measured);
- the resources are exact sums: a lowered layer's cost depends only on the widths of the few modules
  around it (its own, its inputs' writers', found by which single-module changes alter its node) and on
  its memories' styles, so the cost of a plan is a sum of per-layer table entries.  The measured plans fill
  most of the table; the rest is estimated (the single-module changes added up, within the bounds the
  measured entries set: a wider width never costs less) and measured once a candidate uses it;
- every candidate is lowered and estimated in full; one that does not fit is cut off and the program
  solved again, so the plan returned fits by the real estimate.

Lanes stay at one: they never change the numbers, and the build's lanes step only spends what the plan
leaves, so a plan fits with lanes "auto" exactly when it fits with one lane.  The memory placement is part
of the program (the flow's "budget" style places one memory at a time once the widths are fixed) and is
written into the plan, so `build --plan` builds the design that was verified.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from qonnx_spartan import search_plot
from qonnx_spartan.atomic import write_atomically
from qonnx_spartan.budget import Budget
from qonnx_spartan.errors import SpartanError
from qonnx_spartan.estimate import estimate
from qonnx_spartan.flow import BuildConfig, estimate_only
from qonnx_spartan.hostio import METADATA_KEY, HostIO
from qonnx_spartan.model_file import load_model
from qonnx_spartan.ops.base import RESOURCES
from qonnx_spartan.plan import BITS, Plan, quantiser_module
from qonnx_spartan.reference import run_reference
from qonnx_spartan.transforms import AnnotateBitwidths, Canonicalise, LowerToIntegerOps, Tidy
from qonnx_spartan.transforms.bitwidths import FIELDS, quantiser_kind
from qonnx_spartan.transforms.memory_style import memories, set_style
from qonnx_spartan.transforms.scoped_names import ScopedNames

DEFAULT_BITS = (4, 6, 8)
#: Budgets of the Pareto front, the user's included.
DEFAULT_POINTS = 8
#: Candidates verified per budget at most (Search.fit); each one that does not fit is measured and cut off.
ROUNDS = 16
#: A layer's memories in two groups, each placed as one: its output buffer ("top": the input buffer), its
#: weight memories.
GROUPS = ("out", "weights")
TOP = "top"
#: The program's goal is scaled to at most SCALE (the solver's absolute gap is 1e-6); far below it, two
#: tie-breaks: at equal error the wider widths, then the fewer resources (as shares of the budget).
SCALE, EPS_BITS, EPS_USE = 1e4, 0.1, 0.01

#: A row of a program: (columns, coefficients, lower bound, upper bound).
Row = tuple[list[int], list[float], float, float]


def parse_bits(text: str) -> tuple[int, ...]:
    """'4,6,8' -> (4, 6, 8): the widths every layer may take."""
    widths = set()
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not BITS[0] <= int(part) <= BITS[1]:
            raise SpartanError(
                f"--bits: '{part}' is not a whole number from {BITS[0]} to {BITS[1]} (e.g. --bits 4,6,8)"
            )
        widths.add(int(part))
    return tuple(sorted(widths))


def quantised_layers(model: ModelWrapper) -> dict[str, tuple[str, ...]]:
    """Plan key -> the fields it sets: the module owning each weight or activation quantiser (where Brevitas
    did not name the Quant node, its output tensor: tidying may rename nodes, never tensors), with
    weight_bits and/or act_bits."""
    found: dict[str, set[str]] = {}
    for node in model.graph.node:
        if node.op_type == "Quant" and (kind := quantiser_kind(model, node)) in FIELDS:
            found.setdefault(quantiser_module(node.name) or node.output[0], set()).add(FIELDS[kind])
    return {key: tuple(f for f in FIELDS.values() if f in fields) for key, fields in sorted(found.items())}


def signature(node) -> str:
    """What a lowered layer is, its memory styles aside: equal signatures cost the same."""
    copy = type(node)()
    copy.CopyFrom(node)
    kept = [a for a in copy.attribute if not a.name.endswith("_mem_style")]
    del copy.attribute[:]
    copy.attribute.extend(kept)
    return hashlib.sha1(copy.SerializeToString()).hexdigest()


def slot_place(slot) -> tuple[str, str]:
    """(layer, group) of a memory slot of transforms/memory_style.py."""
    layer, role = slot
    return layer if layer is not None else TOP, "out" if role == "out" else "weights"


def solve_program(
    objective: np.ndarray, rows: list[Row], usage: np.ndarray, high: np.ndarray, real_last: bool = False
) -> np.ndarray | None:
    """Minimise objective @ v over 0-1 vectors v (the last variable a real >= 0 if `real_last`) with the
    sparse rows and usage @ v <= high; None if infeasible."""
    n = len(objective)
    cols = [c for r in rows for c in r[0]]
    matrix = coo_matrix(
        ([v for r in rows for v in r[1]], ([k for k, r in enumerate(rows) for _ in r[0]], cols)), (len(rows), n)
    )
    constraints = [LinearConstraint(matrix.tocsr(), [r[2] for r in rows], [r[3] for r in rows])]
    if np.isfinite(high).any():
        constraints.append(LinearConstraint(usage, -np.inf, high))
    real = np.zeros(n, dtype=bool)
    real[-1] = real_last
    result = milp(
        objective,
        constraints=constraints,
        integrality=(~real).astype(int),
        bounds=Bounds(np.zeros(n), np.where(real, np.inf, 1)),
        options={"mip_rel_gap": 1e-9},
    )
    return None if result.x is None else result.x


@dataclass
class Evaluation:
    """The model lowered at one width per module: its error, and each layer's resources per placement
    (placement p puts the layer's i-th memory group in block RAM when bit i of p is set)."""

    bits: tuple[int, ...]
    model: ModelWrapper
    mse: float
    signatures: dict[str, str]
    costs: dict[str, np.ndarray]  # layer -> (placements, resources)


@dataclass
class Point:
    """A verified plan: widths, memory placement, real error and the real estimate."""

    bits: tuple[int, ...]
    placement: dict[str, int]
    mse: float
    totals: dict[str, int]
    cycles: int
    fraction: float = 1.0  # of the budget it was searched under


class Search:
    """One search: the measured plans, the per-layer cost table and the integer programs."""

    def __init__(self, model_path: Path, budget: Budget, x, y, bits=DEFAULT_BITS, progress=None, sources=None):
        self.budget = budget
        self.limits = np.array([budget.limits()[r] for r in RESOURCES], dtype=float)
        self.bits = tuple(sorted(bits))
        self.progress = progress or (lambda message: None)
        self.tidy = load_model(model_path).transform(ScopedNames()).transform(Tidy()).transform(Canonicalise())  # once
        self.fields = quantised_layers(self.tidy)
        if not self.fields:
            raise SpartanError(f"{model_path}: the model has no weight or activation quantisers to search over")
        self.keys = list(self.fields)
        self.x, self.y = x, y
        self.sources = sources or ("calibration inputs", "reference outputs")
        self.cache: dict[tuple[int, ...], Evaluation] = {}
        self.groups: dict[str, tuple[str, ...]] = {}  # layer -> its memory groups
        self.slots: dict[tuple[str, str], int] = {}  # (layer, group) -> memories in it
        self.deps: dict[str, list[int]] = {}  # layer -> the modules (indices into keys) its cost depends on
        self.table: dict[str, dict[tuple[int, ...], np.ndarray]] = {}  # layer -> widths of deps -> costs
        self.version = 0
        self._tables: dict[bool, tuple[int, dict]] = {}

    def uniform(self, b: int) -> tuple[int, ...]:
        return tuple(b for _ in self.keys)

    @property
    def widest(self) -> tuple[int, ...]:
        return self.uniform(self.bits[-1])

    def single(self, m: int, b: int) -> tuple[int, ...]:
        return self.widest[:m] + (b,) + self.widest[m + 1 :]

    # -- measuring ------------------------------------------------------------------------------------------
    def plan(self, bits: tuple[int, ...], placement: dict[str, int] | None = None) -> Plan:
        """The plan of the widths and, given a placement, the style of every memory (named by its layer's
        exported node; the input buffer by the input tensor)."""
        entries = {key: {f: b for f in self.fields[key]} for key, b in zip(self.keys, bits)}
        if placement is not None:
            model = self.cache[bits].model
            names = {TOP: HostIO.load(model).input.name}
            names.update(
                {node.name: getCustomOp(node).get_nodeattr("source") or node.name for node in model.graph.node}
            )
            for layer, p in placement.items():
                for i, group in enumerate(self.groups[layer]):
                    field = "out_mem_style" if group == "out" else "weight_mem_style"
                    entries.setdefault(names[layer], {})[field] = "block" if p >> i & 1 else "distributed"
        return Plan.model_validate(entries)

    def evaluate(self, bits: tuple[int, ...]) -> Evaluation:
        """Lower the model at `bits` (cached), run the integer reference, cost every layer."""
        if bits in self.cache:
            return self.cache[bits]
        model = self.tidy.transform(AnnotateBitwidths(self.plan(bits))).transform(LowerToIntegerOps())
        io = HostIO.load(model)
        out = io.output.dequantize(run_reference(model, io.batch(self.x, self.sources[0])))
        if out.shape != self.y.shape:
            given, wanted = self.y.shape[1], out.shape[1]
            raise SpartanError(f"{self.sources[1]}: {given} values per input, but the model gives {wanted}")
        signatures = {node.name: signature(node) for node in model.graph.node}
        signatures[TOP] = model.get_metadata_prop(METADATA_KEY)
        mse = float(np.mean((out.astype(np.float64) - self.y) ** 2))
        evaluation = Evaluation(bits, model, mse, signatures, self.layer_costs(model))
        self.cache[bits] = evaluation
        if self.deps:
            self.learn(evaluation)
        return evaluation

    def layer_costs(self, model: ModelWrapper) -> dict[str, np.ndarray]:
        """Each layer's resources for every placement of its memory groups: one estimate with every memory
        in LUTs and one per group in block RAM (a memory counts in its own layer only)."""
        slots = list(memories(model))
        for slot in slots:
            set_style(model, slot, "distributed")
        base = self.per_layer(model)
        if not self.groups:
            for slot in slots:
                self.slots[slot_place(slot)] = self.slots.get(slot_place(slot), 0) + 1
            self.groups = {layer: tuple(g for g in GROUPS if (layer, g) in self.slots) for layer in base}
        moved = {}
        for group in GROUPS:
            chosen = [slot for slot in slots if slot_place(slot)[1] == group]
            for slot in chosen:
                set_style(model, slot, "block")
            moved[group] = self.per_layer(model)
            for slot in chosen:
                set_style(model, slot, "distributed")
        return {
            layer: np.array(
                [
                    base[layer] + sum(moved[g][layer] - base[layer] for i, g in enumerate(groups) if p >> i & 1)
                    for p in range(2 ** len(groups))
                ]
            )
            for layer, groups in self.groups.items()
        }

    def per_layer(self, model: ModelWrapper) -> dict[str, np.ndarray]:
        report = estimate(model, self.budget)
        return {layer: np.array([v[r] for r in RESOURCES], dtype=float) for layer, v in report["layers"].items()}

    def measure(self) -> None:
        """The widest plan, each module alone at each narrower width, each uniform width; from the single
        changes, which modules each layer depends on; then the cost table."""
        plans = [self.widest]
        plans += [self.single(m, b) for m in range(len(self.keys)) for b in self.bits[:-1]]
        plans += [self.uniform(b) for b in self.bits[:-1]]
        widths = ", ".join(map(str, self.bits))
        self.progress(f"{len(self.keys)} quantised layers, widths {widths}: measuring {len(plans)} plans")
        for k, bits in enumerate(plans, 1):
            self.evaluate(bits)
            if k % 10 == 0 or k == len(plans):
                self.progress(f"measured {k} of {len(plans)} plans")
        base = self.cache[self.widest].signatures
        changed: dict[str, set[int]] = {layer: set() for layer in self.groups}
        for m in range(len(self.keys)):
            for b in self.bits[:-1]:
                for layer, sig in self.cache[self.single(m, b)].signatures.items():
                    if sig != base[layer]:
                        changed[layer].add(m)
        self.deps = {layer: sorted(found) for layer, found in changed.items()}
        for evaluation in self.cache.values():
            self.learn(evaluation)

    def learn(self, evaluation: Evaluation) -> None:
        for layer, deps in self.deps.items():
            self.table.setdefault(layer, {})[tuple(evaluation.bits[m] for m in deps)] = evaluation.costs[layer]
        self.version += 1

    # -- the cost table -------------------------------------------------------------------------------------
    def layer_table(self, layer: str, optimistic: bool) -> tuple[np.ndarray, np.ndarray]:
        """(combos, costs): every combination of the widths the layer depends on, and its resources per
        placement, measured or estimated: the single changes from the widest plan added up, clipped to the
        measured entries below and above it; `optimistic` takes the bound below (wider never costs less)."""
        deps, known, top = self.deps[layer], self.table[layer], self.bits[-1]
        combos = np.array(list(itertools.product(self.bits, repeat=len(deps))), dtype=int)
        combos = combos.reshape(len(self.bits) ** len(deps), len(deps))
        keys = np.array(list(known), dtype=int).reshape(len(known), len(deps))
        values = np.array(list(known.values()))
        widest = known[(top,) * len(deps)]
        additive = np.repeat(widest[None], len(combos), axis=0)
        for j in range(len(deps)):
            for b in self.bits[:-1]:
                additive[combos[:, j] == b] += known[(top,) * j + (b,) + (top,) * (len(deps) - j - 1)] - widest
        below = (combos[:, None, :] >= keys[None]).all(-1)[..., None, None]
        above = (combos[:, None, :] <= keys[None]).all(-1)[..., None, None]
        lower = np.where(below, values[None], -np.inf).max(1)
        upper = np.where(above, values[None], np.inf).min(1)
        costs = lower if optimistic else np.maximum(np.minimum(additive, upper), lower)
        for i, combo in enumerate(map(tuple, combos)):
            if combo in known:
                costs[i] = known[combo]
        return combos, costs

    def tables(self, optimistic: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        cached = self._tables.get(optimistic)
        if cached is None or cached[0] != self.version:
            cached = (self.version, {layer: self.layer_table(layer, optimistic) for layer in self.deps})
            self._tables[optimistic] = cached
        return cached[1]

    # -- the integer programs -------------------------------------------------------------------------------
    def shares_objective(self, usage: np.ndarray, goal: str) -> np.ndarray:
        """The resource part of an objective: the tie-break, plus SCALE x the share of `goal` if it is a
        resource."""
        shares = usage / np.maximum(self.limits, 1)[:, None]
        objective = EPS_USE * shares.sum(0)
        if goal in RESOURCES:
            objective += SCALE * shares[RESOURCES.index(goal)]
        return objective

    def solve(
        self, limits: np.ndarray, goal: str = "error", optimistic: bool = False, cuts=(), below: float | None = None
    ) -> tuple | None:
        """(widths, placement) of 0-1 variables x (module, width) and z (layer, combination, placement), one
        of each per module and layer, z agreeing with x on every module the layer depends on, resources
        within `limits`.  goal "error": the least sum of sensitivities (under `below` if given); "fraction":
        the smallest t with resources <= t x limits.  `cuts` are earlier (widths, placement) that did not fit."""
        tables = self.tables(optimistic)
        n_bits, n_x = len(self.bits), len(self.keys) * len(self.bits)
        offsets, start = {}, n_x
        for layer, (_, costs) in tables.items():
            offsets[layer] = start
            start += costs.shape[0] * costs.shape[1]
        with_t = goal == "fraction"
        rows: list[Row] = [
            (list(range(m * n_bits, (m + 1) * n_bits)), [1] * n_bits, 1, 1) for m in range(len(self.keys))
        ]
        usage = np.zeros((len(RESOURCES), start + with_t))
        for layer, (combos, costs) in tables.items():
            first, n_place = offsets[layer], costs.shape[1]
            n_cfg = costs.shape[0] * n_place
            rows.append((list(range(first, first + n_cfg)), [1] * n_cfg, 1, 1))
            for j, m in enumerate(self.deps[layer]):
                for i, b in enumerate(self.bits):
                    cols = [first + c * n_place + p for c in np.flatnonzero(combos[:, j] == b) for p in range(n_place)]
                    rows.append((cols + [m * n_bits + i], [1] * len(cols) + [-1], 0, 0))
            usage[:, first : first + n_cfg] = costs.reshape(n_cfg, len(RESOURCES)).T
        for bits, placement in cuts:
            cols = []
            for layer, (combos, costs) in tables.items():
                c = int(np.flatnonzero((combos == [bits[m] for m in self.deps[layer]]).all(1))[0])
                cols.append(offsets[layer] + c * costs.shape[1] + placement[layer])
            rows.append((cols, [1] * len(cols), -np.inf, len(cols) - 1))
        if below is not None:
            rows.append((list(range(n_x)), list(self.sensitivities()), -np.inf, below))
        objective = np.zeros(start + with_t)
        objective[n_x:start] = self.shares_objective(usage[:, n_x:start], goal)
        if with_t:
            usage[:, -1] = -limits
            objective[-1] = SCALE
        else:
            objective[:n_x] = self.sensitivities()
        v = solve_program(objective, rows, usage, np.zeros(len(RESOURCES)) if with_t else limits, with_t)
        if v is None:
            return None
        v = np.rint(v)
        bits = tuple(self.bits[int(np.argmax(v[m * n_bits : (m + 1) * n_bits]))] for m in range(len(self.keys)))
        placement = {
            layer: int(np.argmax(v[offsets[layer] : offsets[layer] + costs.shape[0] * costs.shape[1]])) % costs.shape[1]
            for layer, (_, costs) in tables.items()
        }
        return bits, placement

    def sensitivities(self) -> np.ndarray:
        """Per (module, width): the error added over the widest plan, scaled to at most SCALE, plus the
        tie-break towards wider widths."""
        base = self.cache[self.widest].mse
        delta = np.zeros((len(self.keys), len(self.bits)))
        for m in range(len(self.keys)):
            for i, b in enumerate(self.bits[:-1]):
                delta[m, i] = self.cache[self.single(m, b)].mse - base
        delta *= SCALE / max(np.abs(delta).max(), 1e-30)
        return (delta + EPS_BITS * (len(self.bits) - 1 - np.arange(len(self.bits)))).reshape(-1)

    def place(self, evaluation: Evaluation, limits: np.ndarray, goal: str = "use") -> dict[str, int] | None:
        """The placement of a measured plan's memory groups within `limits` using the least of `goal` (a
        resource; "use": the least of everything)."""
        rows: list[Row] = []
        columns: list[tuple[str, int]] = []
        for layer, costs in evaluation.costs.items():
            rows.append((list(range(len(columns), len(columns) + len(costs))), [1] * len(costs), 1, 1))
            columns += [(layer, p) for p in range(len(costs))]
        usage = np.array([evaluation.costs[layer][p] for layer, p in columns]).T
        v = solve_program(self.shares_objective(usage, goal), rows, usage, limits)
        return None if v is None else {layer: p for (layer, p), chosen in zip(columns, np.rint(v)) if chosen}

    # -- verifying ------------------------------------------------------------------------------------------
    def verify(self, bits: tuple[int, ...], placement: dict[str, int], fraction: float = 1.0) -> Point:
        """Lower the plan, place its memories as chosen and estimate the whole design."""
        model = self.evaluate(bits).model
        for slot in memories(model):
            layer, group = slot_place(slot)
            block = placement[layer] >> self.groups[layer].index(group) & 1
            set_style(model, slot, "block" if block else "distributed")
        report = estimate(model, self.budget)
        return Point(bits, dict(placement), self.cache[bits].mse, report["total"], report["cycles"], fraction)

    def fits(self, point: Point, limits: np.ndarray) -> bool:
        return all(point.totals[r] <= limit for r, limit in zip(RESOURCES, limits))

    def fit(self, limits: np.ndarray, fraction: float = 1.0) -> Point | None:
        """The verified plan of least error within `limits`.  The estimated table gives a first candidate;
        then the table's lower bounds (wider never costs less) propose plans of smaller error, which are
        verified in turn: one that fits is the new best, one that does not is cut off (its entries are
        measured now).  When the lower bounds admit nothing better, the best is optimal for the summed
        sensitivities."""
        if self.place(self.evaluate(self.uniform(self.bits[0])), limits) is None:
            return None  # not even the narrowest plan fits, and wider never costs less
        cuts: list[tuple] = []
        found = None
        for _ in range(ROUNDS):
            candidate = self.solve(limits, cuts=cuts) if found is None else None
            below = None if found is None else self.error_sum(found.bits) - 1e-3
            candidate = candidate or self.solve(limits, optimistic=True, cuts=cuts, below=below)
            if candidate is None:
                break
            point = self.verify(*candidate, fraction)
            if self.fits(point, limits):
                found = point
            else:
                cuts.append(candidate)
        return self.best_measured(limits, found, fraction)

    def error_sum(self, bits: tuple[int, ...]) -> float:
        """The program's error term of `bits`: their sensitivities added up."""
        chosen = [m * len(self.bits) + self.bits.index(b) for m, b in enumerate(bits)]
        return float(self.sensitivities()[chosen].sum())

    def best_measured(self, limits: np.ndarray, found: Point | None, fraction: float) -> Point | None:
        """A measured plan of smaller real error than `found` (the sum of sensitivities is not the real
        error) that fits with the best placement of its memories, e.g. a uniform width."""
        for evaluation in sorted(self.cache.values(), key=lambda e: e.mse):
            if found is not None and evaluation.mse >= found.mse:
                break
            placement = self.place(evaluation, limits)
            if placement is not None:
                point = self.verify(evaluation.bits, placement, fraction)
                if self.fits(point, limits):
                    return point
        return found

    # -- the search -----------------------------------------------------------------------------------------
    def run(self, points: int = DEFAULT_POINTS) -> tuple[Point, list[Point]]:
        """The best plan for the budget, and the Pareto front of error against the share of the budget: the
        best plans for the budget scaled down to the smallest share any plan fits in."""
        if self.place(self.evaluate(self.uniform(self.bits[0])), self.limits) is None:
            raise SpartanError(self.infeasible())
        self.measure()
        best = self.fit(self.limits)
        self.progress(f"{self.budget.device}: {self.describe(best)}")
        found = [best]
        low = self.solve(self.limits, goal="fraction") if points > 1 else None
        fractions = []
        if low is not None:
            smallest = self.verify(*low)
            share = max(smallest.totals[r] / max(limit, 1) for r, limit in zip(RESOURCES, self.limits))
            fractions = np.linspace(min(share, 1), 1, points)[:-1]
        for k, fraction in enumerate(fractions, 1):
            point = self.fit(np.floor(self.limits * fraction + 1e-9), float(fraction))
            found += [point] if point is not None else []
            shown = self.describe(point) if point is not None else "no plan found"
            self.progress(f"Pareto point {k} of {len(fractions)}, {fraction:.0%} of the budget: {shown}")
        # plans measured for smaller budgets fit this one too: the least error, then the smallest share, wins
        found.append(self.best_measured(self.limits, best, 1.0))
        best = min(found, key=lambda p: (p.mse, p.fraction))
        front: list[Point] = []
        for point in sorted(found, key=lambda p: p.fraction):
            if not front or point.mse < front[-1].mse:
                front.append(point)
        return best, front

    @property
    def lsb(self) -> float:
        """The output quantiser's LSB at the widest plan: the unit errors are reported in."""
        return HostIO.load(self.evaluate(self.widest).model).output.scale

    def rms_lsb(self, mse: float) -> float:
        return math.sqrt(mse) / self.lsb

    def describe(self, point: Point, error: bool = True) -> str:
        """'layers at 4 to 8 bits, 3 of 28 memories in BRAM, RMS error 1.2 output LSBs'."""
        low, high = min(point.bits), max(point.bits)
        widths = f"all layers at {low} bits" if low == high else f"layers at {low} to {high} bits"
        total = sum(self.slots.values())
        block = sum(
            self.slots[layer, group]
            for layer, p in point.placement.items()
            for i, group in enumerate(self.groups[layer])
            if p >> i & 1
        )
        where = {0: "memories in LUTs", total: "memories in BRAM"}.get(block, f"{block} of {total} memories in BRAM")
        return f"{widths}, {where}" + (f", RMS error {self.rms_lsb(point.mse):.3g} output LSBs" if error else "")

    def infeasible(self) -> str:
        """One line: the resources no plan brings within their limits (the others kept where possible), the
        least each reaches, and the limits that are full then.  Wider never costs less, so the least is the
        narrowest plan's, with its memories placed for it."""
        narrowest = self.evaluate(self.uniform(self.bits[0]))
        least = []
        for k, r in enumerate(RESOURCES):
            others = np.where(np.arange(len(RESOURCES)) == k, np.inf, self.limits)
            placement = self.place(narrowest, others, r) or self.place(narrowest, np.full(len(RESOURCES), np.inf), r)
            least.append(self.verify(narrowest.bits, placement))
        binding = [r for r, point, limit in zip(RESOURCES, least, self.limits) if point.totals[r] > limit]
        if not binding:
            return f"no plan fits {self.budget.device}: its limits cannot all be met at once"
        limits = dict(zip(RESOURCES, self.limits.astype(int)))
        reached = []
        for r in binding:
            point = least[RESOURCES.index(r)]
            used = point.totals
            full = [
                f"{o} at its limit {limits[o]}" if used[o] == limits[o] else f"{o} {used[o]} of {limits[o]}"
                for o in RESOURCES
                if o not in binding and used[o] >= limits[o]
            ]
            reached.append(f"{r} {point.totals[r]} ({', '.join([self.describe(point, error=False), *full])})")
        caps = ", ".join(f"{r} {limits[r]}" for r in binding)
        widths = ", ".join(map(str, self.bits))
        return (
            f"no plan with widths {widths} fits {self.budget.device} ({caps}): the smallest reachable is "
            f"{' and '.join(reached)}; binding: {', '.join(binding)}"
        )


@dataclass
class SearchResult:
    plan: Plan
    best: Point
    front: list[Point]
    search: Search
    seconds: float

    def point_json(self, point: Point) -> dict:
        s = self.search
        return {
            "budget_fraction": round(point.fraction, 4),
            "rms": math.sqrt(point.mse),
            "rms_lsb": s.rms_lsb(point.mse),
            "resources": point.totals,
            "cycles": point.cycles,
            "widths": dict(zip(s.keys, point.bits)),
            "plan": s.plan(point.bits, point.placement).to_json(),
        }

    def to_json(self) -> dict:
        """PLAN.pareto.json: the chosen point, the front, every module's sensitivity."""
        s = self.search
        sensitivity = {
            key: {str(b): s.rms_lsb(s.cache[s.single(m, b)].mse) for b in s.bits} for m, key in enumerate(s.keys)
        }
        return {
            "device": s.budget.device,
            "budget": s.budget.limits(),
            "widths": list(s.bits),
            "output_lsb": s.lsb,
            "chosen": self.point_json(self.best),
            "points": [self.point_json(p) for p in self.front],
            "sensitivity_rms_lsb": sensitivity,
            "plans_measured": len(s.cache),
            "seconds": round(self.seconds, 1),
        }


def search(
    model_path: Path,
    budget: Budget,
    x: np.ndarray,
    y: np.ndarray,
    bits=DEFAULT_BITS,
    points: int = DEFAULT_POINTS,
    progress: Callable[[str], None] | None = None,
    sources: tuple[str, str] = ("calibration inputs", "reference outputs"),
) -> SearchResult:
    """The plan of least error on `x` (float calibration inputs, batch first) against `y` (reference outputs,
    batch first) whose estimate fits `budget`, and the Pareto front of error against resources.  `sources`
    name x and y in error messages."""
    started = time.monotonic()
    x, y = np.asarray(x), np.asarray(y)
    if y.ndim == 0 or len(y) != len(x) or not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        rows = len(y) if y.ndim else 0
        raise SpartanError(f"{sources[1]}: {rows} rows, but one row of finite numbers per calibration input ({len(x)})")
    s = Search(model_path, budget, x, y.reshape(len(y), -1).astype(np.float64), bits, progress, sources)
    best, front = s.run(points)
    plan = s.plan(best.bits, best.placement)
    flow = estimate_only(BuildConfig(model=model_path, output_dir=Path("."), budget=budget, plan=plan, lanes=1))
    if flow["total"] != best.totals:  # the build's own steps must build what was verified
        raise RuntimeError(f"the build flow estimates the plan at {flow['total']}, the search at {best.totals}")
    return SearchResult(plan, best, front, s, time.monotonic() - started)


def output_paths(plan_path: Path) -> tuple[Path, Path, Path]:
    """PLAN.json -> (PLAN.json, PLAN.pareto.json, PLAN.pareto.png)."""
    stem = plan_path.with_suffix("")
    return plan_path, stem.with_name(f"{stem.name}.pareto.json"), stem.with_name(f"{stem.name}.pareto.png")


def plan_text(plan: Plan) -> str:
    """The plan as JSON, one entry per line (as readable as the YAML plans of the docs)."""
    entries = [f"  {json.dumps(key)}: {json.dumps(entry)}" for key, entry in plan.to_json().items()]
    return "{\n" + ",\n".join(entries) + "\n}\n"


def write_outputs(result: SearchResult, plan_path: Path) -> list[Path]:
    """Write the plan, the Pareto document and (with matplotlib) its plot, each complete or not at all."""
    plan_file, pareto_file, plot_file = output_paths(plan_path)
    doc = result.to_json()
    writers = [
        (plan_file, lambda p: p.write_text(plan_text(result.plan))),
        (pareto_file, lambda p: p.write_text(json.dumps(doc, indent=2) + "\n")),
    ]
    if search_plot.available():
        writers.append((plot_file, lambda p: search_plot.plot_front(doc, p)))
    for path, write in writers:
        write_atomically(path, write)
    return [path for path, _ in writers]
