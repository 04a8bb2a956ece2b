"""``seethrough attack``: make an adversarial example of an image file."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .base import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, load


@app.command()
def attack(
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format)"),
    method: str = typer.Option("pgd", "--method", help="ascent, fgsm, bim or pgd"),
    eps: float = typer.Option(2.0, "--eps", help="L∞ budget in pixel units (0-255); L2 radius with --norm l2"),
    target: Optional[int] = typer.Option(None, "--target", help="make it this class (default: untargeted)"),
    steps: Optional[int] = typer.Option(None, "--steps", help="iterations (bim, pgd, ascent)"),
    norm: str = typer.Option("linf", "--norm", help="linf or l2 (fgsm, bim, pgd)"),
    lr: float = typer.Option(0.1, "--lr", help="learning rate of ascent"),
    seed: int = typer.Option(0, "--seed", help="random start of pgd"),
    out: Path = typer.Option(Path("attack"), "--out", "-o", help="output folder"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Attack IMAGE; write original.png, adversarial.png (8-bit), difference.png, history.png and history.csv."""
    import matplotlib.pyplot as plt

    from ..adversarial import ATTACKS
    from ..adversarial import attack as run_attack
    from ..render.adversarial import attack_figure, difference, save_png

    if method not in ATTACKS:
        raise ValueError(f"unknown attack method {method!r}; available: {', '.join(ATTACKS)}")
    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    given = {"eps": eps, "steps": steps, "norm": norm, "lr": lr, "seed": seed}
    options = {k: v for k, v in given.items() if k in ATTACKS[method].defaults and v is not None}
    res = run_attack(loaded.model, x, method, target=target, progress=True, **options)
    out.mkdir(parents=True, exist_ok=True)
    save_png(res.x, out / "original.png")
    save_png(res.x_adv, out / "adversarial.png")
    difference(res.x, res.x_adv).save(out / "difference.png")
    fig = attack_figure(res, 0, loaded.labels)
    fig.savefig(out / "history.png", dpi=100)
    plt.close(fig)
    names = loaded.labels
    with open(out / "history.csv", "w", encoding="utf-8") as f:
        f.write("iteration,class,label,probability,goal_probability\n")
        for k in range(res.history_class.shape[1]):
            c = int(res.history_class[0, k])
            label = names[c] if names is not None and c < len(names) else str(c)
            f.write(f"{k},{c},\"{label}\",{res.history_prob[0, k]:.6f},{res.history_goal_prob[0, k]:.6f}\n")
    typer.echo(res.summary(names)[0])
    typer.echo(f"written to {out}/: original.png adversarial.png difference.png history.png history.csv")
