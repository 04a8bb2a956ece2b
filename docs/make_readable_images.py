"""Make the CLI-style pictures quoted in docs/inspect.md and docs/attribution.md ("readable
pictures": titles, numbers, stated colour scales, dead units named), on lenet-digits (≈ 30 s).

    python docs/make_readable_images.py
"""
from pathlib import Path

import seethrough as see
from seethrough.inspect import pick_channels, topk_examples

OUT = Path(__file__).parent / "img"


def save(img, name: str) -> None:
    path = OUT / f"readable-{name}.png"
    see.render.save_picture(img, path)
    print(path, img.size, f"{path.stat().st_size // 1024} KB")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    lenet, prep = see.zoo.load("lenet-digits")
    x = see.zoo.digits("test")[0][:1]
    digits = see.zoo.digits("all")[0]
    target = 1

    # Attribution: every registered method that runs on lenet ("cam" needs a GAP + linear head), one grid.
    maps = {}
    for name in see.METHODS:
        if name == "cam":
            continue
        seeded = "seed" in [o.name for o in see.catalog.get("attribution", name).options]
        a = see.attribute(lenet, x, name, target=target, **({"seed": 0} if seeded else {}))
        maps[name] = see.render.for_display(name, a)  # RISE minus its mean, as the CLI and the report show it
    save(see.render.panel(x, maps, title=f"lenet-digits · test digit 0 · class {target}"), "panel-lenet")
    save(see.render.attribution_figure(x, maps["integrated-gradients"],
                                       title=f"lenet-digits · integrated-gradients · class {target}"), "ig-lenet")

    # Inside: filters, activation maps and top-9 with their numbers; dead units named.
    w = see.filters(lenet, "conv2", filters=4, channels=6)
    save(see.render.filter_figure(w, title="lenet-digits · conv2 · 4 filters × 6 input channels (5×5)"), "filters-lenet-conv2")
    a = see.activations(lenet, x, "relu1")["relu1"][0]
    save(see.render.activation_figure(a, pick_channels(a), title="lenet-digits · relu1 · test digit 0"), "activations-lenet-relu1")
    res = see.topk(lenet, digits, "relu1", k=9, progress=False).head(3)
    c, p = topk_examples(lenet, digits, res)
    save(see.render.topk_figure(c, p, res, title=f"lenet-digits · relu1 · top 9 of {len(digits)} digits",
                                n_inputs=len(digits)), "topk-lenet-relu1")


if __name__ == "__main__":
    main()
