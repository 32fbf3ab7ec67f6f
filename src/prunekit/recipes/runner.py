"""Run a validated recipe: load once, apply the steps in order, evaluate, export atomically with a report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from prunekit.errors import PrunekitError
from prunekit.recipes.schema import Recipe, Step


def precheck(recipe: Recipe) -> None:
    """Everything that can be checked without the model: data sources (every part of a
    calibration mixture, answered parts' corpora included), device, dtype."""
    from prunekit.calibration.sets import check_spec
    from prunekit.data.sources import resolve_source
    from prunekit.models.loading import parse_dtype, resolve_device

    parse_dtype(recipe.dtype)
    resolve_device(recipe.device)
    check_spec(recipe.calibration["source"])
    for step in recipe.steps:
        if step.name == "search_plan":
            _read_plan(step)
        if step.name == "vocabulary" and step.options["corpus"]:
            resolve_source(step.options["corpus"], "calib")
        if step.options.get("source"):
            try:
                check_spec(step.options["source"])
            except PrunekitError as exc:
                raise PrunekitError(f"recipe step {step.name}: {exc}") from None
    for data in recipe.evaluate["perplexity"]:
        resolve_source(data, "eval")


def _read_plan(step: Step) -> dict:
    """The search_plan step's plan, read and checked to be one (one line naming the step)."""
    from prunekit.search.plan import read_plan

    try:
        return read_plan(step.config.file)
    except PrunekitError as exc:
        message = str(exc).replace("--plan ", "file ")
        raise PrunekitError(f"recipe step search_plan: {message}") from None


def check_against_model(recipe: Recipe, model, adapter, tokenizer) -> None:
    """Model-dependent checks, run after loading and before the first step changes anything."""
    from prunekit.api import check_seq_len
    from prunekit.structural.depth import check_layers, check_remove
    from prunekit.structural.vocabulary import check_tokenizer

    layers = len(adapter.layers(model))
    reshaped = False  # a step before changed the blocks: later budgets are checked when they run
    for step in recipe.steps:
        if step.name != "search_plan":  # a plan calibrates as its search did
            check_seq_len(model, step.options.get("seq_len") or recipe.calibration["seq_len"])
        if step.name == "structured" and not reshaped:
            _check_structured(step, model, adapter)
        if step.name == "depth":
            try:
                if step.options["layers"] is None:
                    check_remove(step.options["remove"], layers)
                elif not reshaped:  # after a depth step the indices are checked when it runs
                    check_layers(step.options["layers"], layers)
            except PrunekitError as exc:
                raise PrunekitError(f"recipe step depth: {exc}") from None
        reshaped = reshaped or step.name in ("depth", "width", "structured")
        if step.name == "vocabulary":
            check_tokenizer(tokenizer)
        planned = len(_read_plan(step)["layers"]) if step.name == "search_plan" else layers
        if planned != layers:
            raise PrunekitError(
                f"recipe step search_plan: the plan has {planned} layers, the model {layers}; "
                "was it searched on another model?"
            )
    if recipe.evaluate["perplexity"]:
        check_seq_len(model, recipe.evaluate["ppl_seq_len"])
    if recipe.export.gguf:
        _check_gguf(model, tokenizer)


def _check_gguf(model, tokenizer) -> None:
    """What `export: {gguf: ...}` would refuse whatever the steps do, before the first step."""
    from prunekit.export.gguf import check_exportable

    try:
        check_exportable(model.config, tokenizer)
    except PrunekitError as exc:
        raise PrunekitError(f"recipe export: {exc}") from None


def _check_structured(step: Step, model, adapter) -> None:
    from prunekit.structural.saap import check_budget

    try:
        check_budget(model, adapter, step.config)
    except PrunekitError as exc:
        raise PrunekitError(f"recipe step structured: {exc}") from None


class _Run:
    """State of one recipe run: the model and tokenizer as they are now, plus the report."""

    def __init__(
        self, recipe: Recipe, model, tokenizer, device: torch.device, progress: bool
    ) -> None:
        from prunekit.models.adapters import adapter_for

        self.recipe, self.model, self.tokenizer = recipe, model, tokenizer
        self.adapter = adapter_for(model)
        self.device, self.progress = device, progress
        self.depth_results: list = []
        self.structured_sections: list[dict] = []

    def calibration(self, step: Step):
        """The step's calibration set (its own source/samples/seq_len or the recipe's, as its
        config holds them), tokenized with the tokenizer as it is now (after any vocabulary
        step); answered parts are answered by the model as it is now."""
        from prunekit.calibration.sets import build_calibration

        cfg = step.config
        return build_calibration(
            cfg.calib,
            self.model,
            self.tokenizer,
            **cfg.size(),
            device=self.device,
            progress=self.progress,
        )

    def context(self, cal):
        """The run context of a step calibrated on `cal` (None: a step without data)."""
        from prunekit.calibration.context import RunContext

        return RunContext.calibrated(self.model, self.tokenizer, cal, self.device, self.progress)

    def search_plan(self, step: Step) -> dict:
        """Rebuild a `prunekit search` plan (its calibration, split and levels database, as
        `prunekit search MODEL --plan` does); on the CPU, as the search runs."""
        from prunekit.search.run import rebuild

        plan = _read_plan(step)
        result = rebuild(self.model, self.tokenizer, plan, self.progress)
        self.tokenizer = result.tokenizer  # a plan with a vocabulary move prunes the tokenizer too
        rep = result.report
        out = {"calibration": rep["calibration"], "plan": rep["search_plan"]}
        return out | ({"vocabulary": rep["vocabulary"]} if "vocabulary" in rep else {})

    def vocabulary(self, step: Step) -> dict:
        from prunekit.data.sources import resolve_source
        from prunekit.structural.vocabulary import prune_vocabulary

        cfg = step.config
        source = resolve_source(cfg.corpus or self.recipe.calibration["source"], "calib")
        self.tokenizer, rep = prune_vocabulary(
            self.model, self.tokenizer, self.adapter, source.documents(), cfg.min_count
        )
        return {"corpus": source.description, **rep}

    def depth(self, step: Step) -> dict:
        """Remove layers (given, or chosen greedily / as the best run) and, with `repair: linear`,
        fold a least-squares map of each removed run into the block before it."""
        from prunekit.structural.depth import DepthResult, check_layers
        from prunekit.structural.depth_runs import prune_depth, remove_given

        cfg = step.config
        if cfg.layers is not None:  # given by the user: nothing to score
            check_layers(cfg.layers, len(self.adapter.layers(self.model)))
            calib = self.calibration(step) if cfg.repair == "linear" else None
            rep = remove_given(self.context(calib), cfg)
            if calib is not None:  # the report's order: ..., repair, calibration, runs_repaired
                fits = rep.pop("runs_repaired")
                rep |= {"calibration": calib.describe(), "runs_repaired": fits}
            return rep
        calib = self.calibration(step)
        torch.manual_seed(cfg.seed)
        # answer positions only (the context's weights); None without an answered part
        rep = prune_depth(self.context(calib), cfg)
        chosen = rep.pop("selection_result")
        if cfg.selection == "greedy":  # rounds and stability, as the report always had them
            rounds = [{int(k): v for k, v in r.items()} for r in chosen["rounds"]]
            self.depth_results.append(
                DepthResult(cfg.criterion, cfg.last_token, rep["order"], rounds)
            )
        else:
            rep["run_scores"] = chosen
        rep["removed"] = rep.pop("order")  # in the order chosen
        return {"calibration": calib.describe(), **chosen, **rep}

    def width(self, step: Step) -> dict:
        from prunekit.structural.width import prune_width

        calib = self.calibration(step)  # unweighted: every position of a chat sequence counts
        rep = prune_width(self.context(calib), step.config)
        return {"calibration": calib.describe(), **rep}

    def structured(self, step: Step) -> dict:
        from prunekit.structural.saap import prune_structured

        calib = self.calibration(step)  # unweighted, as width
        torch.manual_seed(step.config.seed)
        rep = prune_structured(self.context(calib), step.config)
        self.structured_sections.append(rep)
        return {"calibration": calib.describe(), **rep}

    def unstructured(self, step: Step) -> dict:
        """`api.prune` with the step's PruneConfig (the recipe's calibration filled in)."""
        from prunekit import api

        result = api.prune(
            self.model, self.tokenizer, step.config, device=self.device, progress=self.progress
        )
        rep = dict(result.report)
        rep.pop("timings_s", None)
        return rep

    def recover(self, step: Step) -> dict:
        """Distil the pruned model from its dense original (the recipe's model unless `teacher`)."""
        from prunekit.models.loading import load_model
        from prunekit.recovery.run import recover

        teacher = load_model(step.config.teacher or self.recipe.model, "bfloat16")
        result = recover(
            self.model,
            self.tokenizer,
            teacher.model,
            teacher.tokenizer,
            step.config.settings(),
            device=self.device,
            progress=self.progress,
        )
        self.model.to("cpu")
        return {"teacher": teacher.info, **result.report}

    def evaluate(self) -> dict:
        from prunekit import api

        ev = self.recipe.evaluate
        out: dict = {}
        if ev["perplexity"]:
            self.model.to(self.device)
            out["perplexity"] = {
                d: api.perplexity(
                    self.model,
                    self.tokenizer,
                    d,
                    ev["ppl_seq_len"],
                    ev["ppl_tokens"],
                    ev["ppl_batch_size"],
                    self.device,
                    self.progress,
                )
                for d in ev["perplexity"]
            }
            self.model.to("cpu")
        if ev["humaneval"]:
            out["humaneval"] = self._humaneval(
                ev["humaneval"] if isinstance(ev["humaneval"], dict) else {}
            )
        if ev["speed"]:
            out["speed"] = self._speed(ev["speed"] if isinstance(ev["speed"], dict) else {})
        return out

    def _humaneval(self, opts: dict) -> dict:
        """HumanEval pass@1 via the code-evaluation component (sandboxed execution)."""
        if importlib.util.find_spec("prunekit.evaluation.humaneval") is None:
            return {
                "status": "unavailable",
                "reason": "prunekit.evaluation.humaneval is not installed",
            }
        from prunekit.evaluation.humaneval import run_humaneval

        self.model.to(self.device)
        try:
            return run_humaneval(
                self.model,
                self.tokenizer,
                device=self.device,
                progress=self.progress,
                model_name=self.recipe.model,
                **opts,
            )
        finally:
            self.model.to("cpu")

    def _speed(self, opts: dict) -> dict:
        """Prefill/decode throughput and memory via the code-evaluation component's speed meter."""
        if importlib.util.find_spec("prunekit.evaluation.speed") is None:
            return {"status": "unavailable", "reason": "prunekit.evaluation.speed is not installed"}
        from prunekit.evaluation.speed import measure_speed

        self.model.to(self.device)
        try:
            return measure_speed(self.model, self.device, progress=self.progress, **opts)
        finally:
            self.model.to("cpu")


def run_recipe(
    recipe: Recipe, out: Path, force: bool = False, progress: bool = True, command=None
) -> dict:
    """Load the model, run every step, evaluate, and write checkpoint + report.json/md (+ plots) atomically."""
    from prunekit.export.checkpoint import save_checkpoint, skipping_weights
    from prunekit.models.loading import load_model, resolve_device
    from prunekit.reports.report import new_report, param_counts, write_report
    from prunekit.structural.depth import plot_depth_scores
    from prunekit.utils import Timer, check_output_dir, peak_rss_mb, write_output

    check_output_dir(out, force)
    precheck(recipe)
    device = resolve_device(recipe.device)
    timer = Timer()
    report = new_report(command)
    report["recipe"] = recipe.raw
    with timer("load"):
        lm = load_model(recipe.model, recipe.dtype, recipe.trust_remote_code)
    report["model"] = lm.info
    run = _Run(recipe, lm.model, lm.tokenizer, device, progress)
    check_against_model(recipe, run.model, run.adapter, run.tokenizer)
    report["params_before"] = param_counts(run.model)
    if recipe.evaluate["before"] and recipe.evaluate["perplexity"]:
        with timer("eval_before"):
            report["evaluation_before"] = {"perplexity": run.evaluate()["perplexity"]}
    report["steps"] = []
    for step in recipe.steps:
        with timer(step.name):
            rep = getattr(run, step.name)(step)
        report["steps"].append(
            {
                "step": step.name,
                "options": step.options,
                "params_after": param_counts(run.model),
                **rep,
            }
        )
    report["params"] = param_counts(run.model)
    with timer("eval_after"):
        report["evaluation"] = run.evaluate()
    report["timings_s"] = timer.stages
    report["peak_rss_mb"] = peak_rss_mb()
    name = Path(out).resolve().name  # GGUF files are named (and name the model) after OUT

    def _write(tmp: Path) -> None:
        save_checkpoint(run.model, run.tokenizer, tmp)
        for i, result in enumerate(run.depth_results):
            plot_depth_scores(result, tmp / f"depth_scores{'' if i == 0 else i + 1}.png")
        for section in run.structured_sections:
            from prunekit.reports.structured_plots import write_ratio_plot

            write_ratio_plot(section, tmp / "structured_ratios.png")
        if recipe.export.gguf and not skipping_weights():  # a salvage keeps no weights
            report["export"] = {"gguf": export_ggufs(tmp, recipe.export.gguf, name, progress)}
        write_report(tmp, report)
        with (tmp / "report.md").open("a") as fh:
            fh.write(render_steps(report))

    write_output(Path(out), _write, force=force)
    refused = report.get("export", {}).get("gguf", {}).get("refused")
    if refused:
        raise PrunekitError(
            f"recipe export: {refused} (no GGUF written; the model and report are in '{out}')"
        )
    return report


def export_ggufs(folder: Path, quants: list[str], name: str, progress: bool) -> dict:
    """FOLDER/NAME-QUANT.gguf for each quant, by `prunekit export`'s exporter (the file named
    `name` as if exported from its final place); the refusal line instead of any file when
    llama.cpp cannot hold the result (refusals do not depend on the quant)."""
    from prunekit.export.gguf import export_gguf, plan_export

    try:
        plan_export(folder, quants[0])
    except PrunekitError as exc:
        return {"files": [], "refused": str(exc)}
    files = []
    for quant in quants:
        file = folder / f"{name}-{quant}.gguf"
        result = export_gguf(folder, file, quant, progress=progress, name=name)
        files.append(
            {
                "file": file.name,
                "quant": quant,
                "arch": result.arch,
                "bytes": result.bytes,
                "tensors": result.tensors,
            }
        )
    return {"files": files}


def render_steps(report: dict) -> str:
    """Markdown for the structural part of a recipe report (appended to the standard report)."""
    before = report.get("params_before", {}).get("total")
    lines = [
        "",
        "## Recipe steps",
        "",
        "| step | parameters after | change | details |",
        "|---|---|---|---|",
    ]
    prev = before
    for s in report.get("steps", []):
        total = s["params_after"]["total"]
        change = f"{(total - prev) / prev:+.1%}" if prev else "—"
        lines.append(f"| {s['step']} | {total:,} | {change} | {_details(s)} |")
        prev = total
    if before:
        after = report["params"]["total"]
        lines += ["", f"Parameters: {before:,} → {after:,} ({(after - before) / before:+.1%})."]
    ev = report.get("evaluation", {})
    for name in ("humaneval", "speed"):
        if ev.get(name, {}).get("status") == "unavailable":
            lines.append(f"- {name}: unavailable ({ev[name]['reason']})")
    if "pass@1" in ev.get("humaneval", {}):
        he = ev["humaneval"]
        lines.append(
            f"- HumanEval pass@1: {he['pass@1']:.3f} ({he['problems']} problems, {he['mode']})"
        )
    if "decode" in ev.get("speed", {}):
        sp = ev["speed"]
        lines.append(
            f"- speed ({sp['device']}, {sp['dtype']}): prefill {sp['prefill']['tokens_per_s']} tok/s, "
            f"decode batch 1 {sp['decode'].get('batch_1', {}).get('tokens_per_s')} tok/s"
        )
    lines += gguf_lines(report)
    for s in report.get("steps", []):
        if s["step"] != "depth" or "rounds" not in s:  # layers given: no scores to show
            continue
        lines += [
            "",
            f"### Depth rounds ({s['criterion']}{', last token' if s['last_token'] else ''})",
            "",
            "| round | removed (score) | next lowest | highest |",
            "|---|---|---|---|",
        ]
        for r, (scores, removed) in enumerate(zip(s["rounds"], s["removed"]), 1):
            ranked = sorted(scores.items(), key=lambda kv: kv[1])
            nxt = f"{ranked[1][0]} ({ranked[1][1]:.4g})" if len(ranked) > 1 else "—"
            lines.append(
                f"| {r} | {removed} ({scores[str(removed)]:.4g}) | {nxt} | {ranked[-1][0]} ({ranked[-1][1]:.4g}) |"
            )
        lines += _stability_lines(s)
        lines += ["", "![depth scores per round](depth_scores.png)"]
    return "\n".join(lines) + "\n"


def gguf_lines(report: dict) -> list[str]:
    """One line per GGUF file the recipe's `export:` wrote (or the refusal)."""
    gguf = report.get("export", {}).get("gguf", {})
    lines = [
        f"- GGUF {f['file']}: {f['arch']}, {f['quant']}, {f['bytes']:,} bytes"
        for f in gguf.get("files", [])
    ]
    if gguf.get("refused"):
        lines.append(f"- GGUF: not written ({gguf['refused']})")
    return lines


def _stability_lines(s: dict) -> list[str]:
    """One line per round: how often the removed layer was best over bootstrap resamples."""
    st = s.get("stability")
    if not st:
        return []
    if st["rounds"] is None:
        return ["", f"Bootstrap win rates: none ({st['reason']})."]
    lines = [""]
    for r, (wins, removed) in enumerate(zip(st["rounds"], s["removed"]), 1):
        others = sorted((k for k in wins if k != str(removed)), key=lambda k: (-wins[k], int(k)))
        nxt = f"next: {others[0]}, {wins[others[0]]:.0%}" if others else "no other candidate"
        lines.append(
            f"- round {r}: layer {removed} removed: best in {wins[str(removed)]:.0%} of "
            f"{st['resamples']} bootstrap resamples of the {st['batches']} batches ({nxt})"
        )
    return lines


def _details(s: dict) -> str:
    if s["step"] == "search_plan":
        dropped = s["plan"].get("dropped") or "none"
        return f"plan {s['options']['file']}: levels {s['plan'].get('levels')}, dropped {dropped}"
    if s["step"] == "vocabulary":
        return f"tokens {s['tokens_before']:,} → {s['tokens_kept']:,} (corpus {s['kept_from_corpus']:,}, merge chains {s['kept_for_merge_chains']:,}, special {s['kept_special_added']:,}, base {s['kept_base']:,})"
    if s["step"] == "depth":
        how = (
            f"{s['criterion']}{' last-token' if s['last_token'] else ''}"
            if "criterion" in s
            else "given"
        )
        if s.get("selection") == "run":
            how += " best run"
        fixed = s.get("runs_repaired") or []
        repair = "".join(
            f", run {r['run']} repaired into layer {r['layer']} (error {r['fit_before']:.3g} → {r['fit_after']:.3g})"
            for r in fixed
        )
        return f"{how}: layers {s['layers_before']} → {s['layers_after']}, removed in order {s['removed']}{repair}"
    if s["step"] == "width":
        refit = ""
        if s.get("refit"):
            err = s["refit_error"]
            mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
            refit = (
                f", refit: mean layer error {mean(err['before']):.3g} → {mean(err['after']):.3g}"
            )
        return f"{s['criterion']}: FFN {s['intermediate_size_before']} → {s['intermediate_size_after']} (multiple {s['multiple']}){refit}"
    if s["step"] == "structured":
        kinds = ", ".join(
            f"{name} {k['removed_params']:,} params (groups per block {k['groups_after']})"
            for name, k in s["kinds"].items()
        )
        return f"{s['config']['importance']} / {s['config']['ratios']}: removed {kinds}"
    if s["step"] == "recover":
        tr = s["training"]
        return f"{s['config']['method']} {s['config']['train']}: {tr['steps']} steps, {tr['tokens']:,} tokens, zeros kept {s['masks']['pruned_weights_still_zero']}"
    if s["step"] == "unstructured":
        sp = s.get("sparsity", {})
        return f"{s.get('method', {}).get('name')} {s.get('method', {}).get('pattern')}: sparsity {sp.get('achieved', 0):.3f}"
    return ""
