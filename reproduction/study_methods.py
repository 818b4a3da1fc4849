"""A study's methods as its page shows them (the ``study-methods NAME`` fragment): one row per
method of the manifest with its overrides, its own parameter's values, the settings past the grid
(``beyond``) and its ``edge`` rule with what that rule added, read from the finished runs
(:meth:`reproduction.study.Runs.grid`). Nothing here is written twice: the manifest says it once."""

from __future__ import annotations

from reproduction.study import Method, Runs, Study, grid


def numbers(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def per_arch(study: Study, texts: dict[str, str]) -> str:
    """``texts`` (arch -> text) as one text where every architecture has the same, else each
    group of architectures that shares one, by their labels."""
    groups: dict[str, list[str]] = {}
    for a, text in texts.items():
        groups.setdefault(text, []).append(study.archs[a].label)
    if len(groups) == 1 and len(texts) == len(study.archs):
        return next(iter(groups))
    return "; ".join(f"{' and '.join(labels)}: {text}" for text, labels in groups.items())


def parameter(study: Study, method: Method) -> str:
    """The method's own parameter and its values (per architecture where they differ)."""
    if method.key is None:
        return "none (lr only)"
    values = per_arch(study, {a: "{" + numbers(v) + "}" for a, v in method.values.items()})
    text = f"`{method.key}` ∈ {values}"
    return f"{text} ({method.note})" if method.note else text


def beyond(study: Study, method: Method) -> str:
    """The settings added by hand past the grid, per architecture."""

    def one(lr: float, values: tuple[float, ...] | None) -> str:
        return f"lr {lr:g}" + (f" ({method.tag} {numbers(values)})" if values is not None else "")

    return per_arch(study, {a: ", ".join(one(lr, vs) for lr, vs in entries) for a, entries in method.beyond.items()})


def edge(study: Study, method: Method, runs: Runs) -> str:
    """The edge rule in words, then what it added on each architecture so far."""
    e = method.edge
    steps = per_arch(study, {a: numbers(v) for a, v in e.steps.items()})
    if e.along == "value":
        n = f"the next {method.tag}" if e.per == 1 else f"the next {e.per} values of {method.tag}"
        rule = f"while the best setting has the largest {method.tag} at its lr, {n} past it at that lr"
    else:
        n = "the next lr" if e.per == 1 else f"the next {e.per} lrs"
        rule = f"while the best lr is the largest, {n} past it" + (f" (every {method.tag})" if method.key else "")
    rule += f", from {steps}"
    added = {}
    for a in study.archs:
        settings = runs.grid(a, method)
        if settings is None:
            continue
        new = settings[len(grid(study, a, method, runs.fixed(a, method)[1])) :]
        tuned = runs.best(a, method) is not None  # every tuning run finished
        if e.along == "value":
            by_lr: dict[float, list[float]] = {}
            for s in new:
                by_lr.setdefault(s.lr, []).append(s.value)
            at = [f"{method.tag} {numbers(tuple(vs))} at lr {lr:g}" for lr, vs in by_lr.items()]
            added[a] = ", ".join(at)
        else:
            added[a] = f"lr {numbers(tuple(dict.fromkeys(s.lr for s in new)))}" if new else ""
        added[a] = (added[a] or "none") if tuned else (f"{added[a]} (tuning)" if added[a] else "tuning")
    text = f"edge rule: {rule}"
    return text + (f"; added: {per_arch(study, added)}" if added else "")


def methods_markdown(study: Study, runs: Runs | None = None) -> str:
    """The methods table: method, overrides (and the setting taken from another's best), its own
    parameter's values, the settings past the lr grid."""
    runs = runs or Runs(study)
    lines = ["| method | overrides | its own parameter | past the lr grid |", "|---|---|---|---|"]
    for method in study.methods.values():
        overrides = " ".join(f"`{o}`" for o in method.overrides)
        if method.after is not None:
            overrides += f", `{method.after[1]}` = {study.methods[method.after[0]].label}'s best"
        past = [beyond(study, method)] if method.beyond else []
        if method.edge is not None:
            past.append(edge(study, method, runs))
        lines.append(f"| {method.label} | {overrides} | {parameter(study, method)} | {'; '.join(past) or '—'} |")
    return "\n".join(lines)
