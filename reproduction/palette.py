"""The figures' colours by name: one per precision and method, used alike across figures (a
manifest's series name theirs by key, ``reproduction.manifest``)."""

COLORS = {
    "bfloat16": "#e377c2",
    "float16": "#d62728",
    "float32": "#1f77b4",
    "float64": "#2ca02c",
    "adamw": "#7f7f7f",
    "perp": "#9467bd",
    "stablemax": "#ff7f0e",
    "softmax": "#1f77b4",
    "wd": "#8c564b",
}
