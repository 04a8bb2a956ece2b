"""Animations: the perceptron's hyperplanes over training, as PNG frames and a GIF."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from .optimize import figure_to_image  # noqa: E402


def hyperplane_frame(run, index: int, *, size: float = 4.0, dpi: int = 80) -> Image.Image:
    """One frame of a :class:`seethrough.inspect.hyperplanes.HyperplaneRun`: the decision
    regions, the training points and every hidden unit's line w·x + b = 0.

    >>> from seethrough.inspect.hyperplanes import hyperplanes
    >>> hyperplane_frame(hyperplanes(steps=2, snapshots=[2], grid=8), 0, size=2).mode
    'RGB'
    """
    s = run.snapshots[index]
    x0, x1, y0, y1 = run.extent
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(s.regions.numpy(), origin="lower", extent=run.extent, cmap="RdBu_r", vmin=0, vmax=1, alpha=0.45)
    pts, lab = run.x.numpy(), run.y.numpy()
    ax.scatter(pts[:, 0], pts[:, 1], c=np.where(lab == 1, "#b2182b", "#2166ac"), s=6, linewidths=0)
    xs = np.array([x0, x1])
    for (a, b), c in zip(s.weight.double().numpy(), s.bias.double().numpy()):
        if abs(b) > 1e-9:  # a·x + b·y + c = 0  →  y = -(a·x + c) / b
            ax.plot(xs, -(a * xs + c) / b, color="k", lw=0.8, alpha=0.7)
        elif abs(a) > 1e-9:
            ax.axvline(-c / a, color="k", lw=0.8, alpha=0.7)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"step {s.step} · loss {s.loss:.3f} · acc {s.accuracy:.0%}", fontsize=9)
    fig.tight_layout()
    return figure_to_image(fig, dpi=dpi)


def hyperplane_frames(run, **options) -> list[Image.Image]:
    """Every snapshot of the run as a frame (see :func:`hyperplane_frame`).

    >>> import seethrough as see
    >>> run = see.hyperplanes(steps=10, snapshots=[1, 10], grid=20)
    >>> len(hyperplane_frames(run, dpi=30))
    2
    """
    return [hyperplane_frame(run, i, **options) for i in range(len(run.snapshots))]


def save_gif(frames: Sequence[Image.Image], path: str | Path, *, duration: int = 600, loop: int = 0) -> Path:
    """Write frames as an animated GIF (``duration`` ms per frame, the last one shown 3× longer).

    >>> import tempfile, os
    >>> p = save_gif([Image.new("RGB", (4, 4), c) for c in ("red", "blue")], os.path.join(tempfile.mkdtemp(), "a.gif"))
    >>> Image.open(p).n_frames
    2
    """
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    path = Path(path)
    durations = [duration] * (len(frames) - 1) + [duration * 3]
    frames[0].save(path, save_all=True, append_images=list(frames[1:]), duration=durations, loop=loop, optimize=True)
    return path
