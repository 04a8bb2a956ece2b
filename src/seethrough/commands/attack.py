"""``seethrough attack``: make an adversarial example of an image file."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .entry_options import chosen, spec_command
from .base import ArchOpt, ModelOpt, ShaOpt, UnsafeOpt, app, load, out_option, seed_option, target_option


@app.command(cls=spec_command("attack"))
def attack(
    ctx: typer.Context,
    image: Path = typer.Argument(..., help="an image file (any PIL-readable format) or a bundled photo's name (`seethrough images`)"),
    method: str = typer.Option("pgd", "--method", help="the attack (listed below with its options, e.g. --eps 4 --steps 20)"),
    target: Optional[int] = target_option(None, "make it this class (default: untargeted)"),
    seed: int = seed_option("random start of pgd"),
    out: Path = out_option("attack", "original.png, adversarial.png, difference.png, history.png, history.csv"),
    model: str = ModelOpt,
    arch: Optional[str] = ArchOpt,
    unsafe_pickle: bool = UnsafeOpt,
    sha256: Optional[str] = ShaOpt,
):
    """Attack IMAGE; write original.png, adversarial.png (8-bit), difference.png, history.png and history.csv.

    The attack's own options follow the command (`--eps 4 --steps 20 --norm l2`): they are listed below.
    """
    import matplotlib.pyplot as plt

    from ..adversarial import ATTACKS
    from ..adversarial import attack as run_attack
    from ..render.adversarial import attack_figure, difference, save_png

    if method not in ATTACKS:
        raise ValueError(f"unknown attack method {method!r}; available: {', '.join(ATTACKS)}")
    options = chosen(ctx, "attack", [method])[method]  # checked before the model loads
    if "seed" in ATTACKS[method].defaults:
        options.setdefault("seed", seed)
    loaded = load(model, arch, unsafe_pickle, sha256)
    x = loaded.preprocess(image)
    res = run_attack(loaded.model, x, method, target=target, progress=True, **options)
    out.mkdir(parents=True, exist_ok=True)
    save_png(res.x, out / "original.png")
    save_png(res.x_adv, out / "adversarial.png")
    difference(res.x, res.x_adv).save(out / "difference.png")
    goal = "untargeted" if target is None else f"target {target}"
    budget = ""
    if "eps" in options:
        budget = f"ε {options['eps']:g}" + ("/255" if options.get("norm", "linf") == "linf" else " (L2)")
    title = " · ".join(t for t in (image.name, loaded.name, method, budget, goal) if t)
    fig = attack_figure(res, 0, loaded.labels, title=title)
    fig.savefig(out / "history.png", dpi=100)
    plt.close(fig)
    names = loaded.labels
    with open(out / "history.csv", "w", encoding="utf-8") as f:
        f.write("iteration,class,label,probability,goal_probability\n")
        for k in range(res.history_class.shape[1]):
            c = int(res.history_class[0, k])
            label = names[c] if names is not None and c < len(names) else str(c)
            f.write(f"{k},{c},\"{label}\",{res.history_prob[0, k]:.6f},{res.history_goal_prob[0, k]:.6f}\n")
    typer.echo(res.lines(names)[0])
    from ..results import write_result  # the raw result (x, x_adv, histories, options, seed), reloadable

    write_result(res, out, "attack")
    typer.echo(f"written to {out}/: original.png adversarial.png difference.png history.png history.csv "
               "attack.npz attack.json attack.csv")
