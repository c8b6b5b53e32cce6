"""Merge the ``skvqad benchmark`` outputs of a device run into ``RESULTS.md`` tables.

Usage::

    python benchmarks/collect_results.py RESULTS_DIR --final candidate > tables.md

``RESULTS_DIR`` holds one ``skvqad benchmark --ablation`` output folder per run,
named ``<set>-<config>[-<variant>]`` as ``benchmarks/device_run.py`` names them.
Prints Markdown: the headline table for the ``--final`` configuration, the
paper-vs-final training comparison, the post-processing ablation summed up over
the sets, and the extra training runs on grid. Every number is read from the
``benchmark.json`` files; nothing is computed here but means.
"""

import argparse
import json
from pathlib import Path

import numpy as np

MAP_TYPES = ("ssim", "am", "ssim+am")


def load(results):
    runs = {}
    for path in sorted(Path(results).glob("*/benchmark.json")):
        runs[path.parent.name] = json.loads(path.read_text())
    return runs


def headline(report):
    """(set name, metric, {category: result})."""
    metric = (
        "image ROC-AUC" if report["dataset"] == "cifar10" else "pixel ROC-AUC (pooled)"
    )
    return metric, report["results"]


def _fmt(x):
    return "–" if x is None else f"{x:.3f}"


def main_table(runs, config):
    lines = [
        "| Set | Metric | VQ-VAE SSIM | VQ-VAE SSIM+AM | paper SSIM | paper SSIM+AM "
        "| AUPRO@0.3 SSIM / SSIM+AM | codebook usage | fit (s) | device |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    cifar = {"ssim": [], "ssim+am": [], "paper": []}
    for name, report in runs.items():
        parts = name.split("-")
        if parts[-1] != config or len(parts) > (3 if parts[0] == "cifar" else 2):
            continue
        metric, results = headline(report)
        for category, r in results.items():
            paper = r["paper"] or (None, None)
            aupro = (
                f"{r['ssim']['AUPRO@0.3']:.3f} / {r['ssim+am']['AUPRO@0.3']:.3f}"
                if "AUPRO@0.3" in r["ssim"]
                else "–"
            )
            label = f"CIFAR-10 {category}" if parts[0] == "cifar" else category
            lines.append(
                f"| {label} | {metric} | {_fmt(r['ssim'][metric])} "
                f"| {_fmt(r['ssim+am'][metric])} | {_fmt(paper[0])} | {_fmt(paper[1])} "
                f"| {aupro} | {r['codebook_usage']:.2f} | {r['fit_seconds']:.0f} "
                f"| {report.get('device', '?')} |"
            )
            if parts[0] == "cifar":
                cifar["ssim"].append(r["ssim"][metric])
                cifar["ssim+am"].append(r["ssim+am"][metric])
                cifar["paper"].append(paper)
    if cifar["ssim"]:
        n = len(cifar["ssim"])
        paper = np.mean(cifar["paper"], axis=0)
        lines.append(
            f"| CIFAR-10 mean of {n} classes | image ROC-AUC "
            f"| {np.mean(cifar['ssim']):.3f} | {np.mean(cifar['ssim+am']):.3f} "
            f"| {paper[0]:.3f} | {paper[1]:.3f} | | | | |"
        )
    return "\n".join(lines)


def _cifar_runs(runs, config):
    return {
        n: r for n, r in runs.items() if n.startswith("cifar-") and n.endswith(config)
    }


def training_table(runs, configs):
    """SSIM / SSIM+AM per set for each training configuration."""
    head = " | ".join(f"{c} SSIM | {c} SSIM+AM" for c in configs)
    lines = [f"| Set | {head} |", "|---|" + "---|" * (2 * len(configs))]
    for set_name in ("grid", "hazelnut"):
        cells = []
        for c in configs:
            report = runs.get(f"{set_name}-{c}")
            if report is None:
                cells += ["–", "–"]
                continue
            metric, results = headline(report)
            r = next(iter(results.values()))
            cells += [_fmt(r["ssim"][metric]), _fmt(r["ssim+am"][metric])]
        lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    per_config = {
        c: {
            cls: (r["ssim"]["image ROC-AUC"], r["ssim+am"]["image ROC-AUC"])
            for rep in _cifar_runs(runs, f"-{c}").values()
            for cls, r in rep["results"].items()
        }
        for c in configs
    }
    common = sorted(set.intersection(*(set(v) for v in per_config.values())))
    cells = []
    for c in configs:
        if common:
            m = np.mean([per_config[c][cls] for cls in common], axis=0)
            cells += [f"{m[0]:.3f}", f"{m[1]:.3f}"]
        else:
            cells += ["–", "–"]
    label = f"CIFAR-10 mean of {', '.join(common) or 'no common class'}"
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_table(runs, config):
    """Post-processing ablation: grid, hazelnut, CIFAR-10 mean."""
    sets = {}
    for name, report in runs.items():
        parts = name.split("-")
        if parts[-1] != config or "ablation" not in report:
            continue
        if len(parts) > (3 if parts[0] == "cifar" else 2):
            continue
        key = "CIFAR-10 mean" if parts[0] == "cifar" else parts[0]
        for factors in report["ablation"].values():
            sets.setdefault(key, []).append(factors)
    order = [k for k in ("grid", "hazelnut", "CIFAR-10 mean") if k in sets]
    metric = {k: "pixel ROC-AUC (pooled)" for k in ("grid", "hazelnut")}
    metric["CIFAR-10 mean"] = "image ROC-AUC"
    head = " | ".join(f"{k} SSIM | {k} AM | {k} SSIM+AM" for k in order)
    lines = [
        f"| Factor | Value | {head} | CIFAR-10 mean SSIM+AM, max pooling |",
        "|---|---|" + "---|" * (3 * len(order) + 1),
    ]
    first = sets[order[0]][0]
    for factor, rows in first.items():
        for label, row in rows.items():
            cells = []
            for k in order:
                for mt in MAP_TYPES:
                    vals = [f[factor][label][mt][metric[k]] for f in sets[k]]
                    cells.append(f"{np.mean(vals):.3f}")
            if "CIFAR-10 mean" in sets:
                vals = [
                    f[factor][label]["ssim+am"]["image ROC-AUC (max)"]
                    for f in sets["CIFAR-10 mean"]
                ]
                cells.append(f"{np.mean(vals):.3f}")
            else:
                cells.append("–")
            mark = " *" if row["configured"] else ""  # as configured on the first set
            lines.append(f"| {factor} | {label}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extras_table(runs):
    lines = ["| Run | settings | SSIM | SSIM+AM | codebook usage | fit (s) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, report in runs.items():
        if not name.startswith("grid-"):
            continue
        metric, results = headline(report)
        r = results["grid"]
        settings = ", ".join(f"{k}={v}" for k, v in report["settings"].items())
        lines.append(
            f"| {name} | {report['max_epochs']} epochs, {settings} "
            f"| {_fmt(r['ssim'][metric])} | {_fmt(r['ssim+am'][metric])} "
            f"| {r['codebook_usage']:.2f} | {r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--final", default="candidate")
    parser.add_argument("--configs", nargs="+", default=["paper", "candidate"])
    args = parser.parse_args()
    runs = load(args.results)
    print(f"## Final configuration ({args.final})\n")
    print(main_table(runs, args.final))
    print("\n## Training configurations\n")
    print(training_table(runs, args.configs))
    for config in args.configs:
        print(f"\n## Post-processing ablation on the {config} networks\n")
        print(ablation_table(runs, config))
    print("\n## Every grid run\n")
    print(extras_table(runs))


if __name__ == "__main__":
    main()
