"""Regenerate the pictures of docs/tabular.md (the report section's full run: all 143 held-out rows).

    python docs/make_tabular_images.py
"""
from pathlib import Path

import seethrough as see
from seethrough.inspect import rank_agreement
from seethrough.report.sections import tabular as section

OUT = Path(__file__).parent / "img"


def save(fig, name: str) -> None:
    path = OUT / f"tabular-{name}"
    see.render.figure_to_image(fig, dpi=90).save(path, optimize=True)
    print(path, path.stat().st_size // 1024, "KB")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    model, _ = see.zoo.load(section.MODEL)
    s = section.story(model, quick=False)
    shap = s.attributions["KernelSHAP"]
    save(see.render.waterfall(shap[s.row], s.x[s.row], s.names, base=s.base, top=12, score_label="log-odds benign",
                              title=f"{section.MODEL} · held-out row {s.row} · KernelSHAP"), "waterfall.png")
    save(see.render.summary_plot(shap, s.x, s.names, top=15, xlabel="contribution to the log-odds of benign",
                                 title=f"{section.MODEL} · KernelSHAP · {len(s.x)} held-out rows"), "summary.png")
    save(see.render.importance_bars(s.importance, s.names, top=15, order_by="KernelSHAP",
                                    title="the 15 most important features by KernelSHAP"), "importance.png")
    agree = rank_agreement(s.importance)
    save(see.render.rank_heatmap(agree.spearman, agree.names, title="Spearman ρ between the global importances"),
         "agreement.png")


if __name__ == "__main__":
    main()
