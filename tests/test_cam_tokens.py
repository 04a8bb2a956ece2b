"""The CAM family on layers with token positions: the tiny transformer (token ids) and a ViT-like toy
(images through a patch-embedding conv), checked against hand-written float64 Grad-CAM; layers
without positions and a default patch-embedding layer refused in one line."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import seethrough as see
from seethrough.testing import untouched

sys.path.insert(0, str(Path(__file__).parent))
from transformer_fixtures import DIM, Block, tiny_encoder, token_batch  # noqa: E402


def manual_encoder(net, ids, mask):
    """The tiny encoder's forward written out, keeping blocks.1's hidden states for the gradient."""
    hidden = net.embeddings(ids)
    for block in net.blocks:
        hidden = block(hidden, mask)[0]
    return hidden, net.classifier(net.pooler(hidden[:, 0]))


def test_gradcam_on_a_transformer_block_scores_every_token():
    net = tiny_encoder().double()
    ids, mask = token_batch(4)
    with untouched(net):
        a = see.attribute(net, ids, "gradcam", target=1, kind="tokens", extra={"attention_mask": mask}, pad_id=0,
                          layer="blocks.1")
    assert a.shape == ids.shape and a.dtype == torch.float64
    with torch.enable_grad():
        h, logits = manual_encoder(net.eval(), ids, mask)
        (g,) = torch.autograd.grad(logits[:, 1].sum(), h)
    ref = torch.relu((g.mean(1, keepdim=True) * h).sum(2)) * mask  # weights: mean gradient over the positions
    assert torch.allclose(a, ref.detach(), atol=1e-10, rtol=0)
    assert bool((a[mask == 0] == 0).all())
    dropped = see.attribute(net, ids, "gradcam", target=1, kind="tokens", extra={"attention_mask": mask}, pad_id=0,
                            layer="blocks.1", cls_token=True)
    assert bool((dropped[:, 0] == 0).all()) and torch.equal(dropped[:, 1:], a[:, 1:])
    pp = see.attribute(net, ids, "gradcam++", target=1, kind="tokens", extra={"attention_mask": mask}, pad_id=0,
                       layer="blocks.1")
    assert pp.shape == ids.shape and bool((pp >= 0).all())


class TokenGap(nn.Module):
    """Embedding → Linear+ReLU per token → mean over tokens → Linear: CAM's structure on tokens."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, 8)
        self.lin = nn.Linear(8, 8)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        return self.fc(self.act(self.lin(self.emb(ids))).mean(1))


def test_cam_on_tokens_decomposes_the_logit():
    net = TokenGap().double().eval()
    ids = torch.randint(1, 20, (3, 5), generator=torch.Generator().manual_seed(0))
    m = see.attribute(net, ids, "cam", target=2, kind="tokens", layer="act")
    with torch.no_grad():
        logit = net(ids)[:, 2]
    assert m.shape == (3, 5)
    assert torch.allclose(m.mean(1) + net.fc.bias[2], logit, atol=1e-12)


def test_cam_refuses_inputs_and_layers_without_positions():
    net = tiny_encoder().train()
    ids, mask = token_batch(2)
    how = {"kind": "tokens", "extra": {"attention_mask": mask}, "pad_id": 0}
    with untouched(net, allow_raise=ValueError):
        with pytest.raises(ValueError, match=r"^CAM on token ids needs layer="):
            see.attribute(net, ids, "gradcam", **how)
        with pytest.raises(ValueError, match=r"^layer 'pooler.0' outputs shape \(2, 16\), which has no positions"):
            see.attribute(net, ids, "gradcam", layer="pooler.0", **how)
        with pytest.raises(ValueError, match="supports image inputs; this input is tokens"):
            see.attribute(net, ids, "guided-gradcam", layer="blocks.1", **how)
    mlp = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"^gradcam supports image, tokens inputs; this input is tabular"):
        see.attribute(mlp, torch.rand(3, 5), "gradcam")


class TinyViT(nn.Module):
    """16×16 RGB → 4×4 patches (a kernel = stride = 4 conv) → (CLS +) 16 tokens → one block → head."""

    def __init__(self, cls: bool = True):
        super().__init__()
        torch.manual_seed(1)
        self.patch = nn.Conv2d(3, DIM, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, DIM)) if cls else None
        self.pos = nn.Parameter(torch.randn(1, 16 + int(cls), DIM) * 0.1)
        self.blocks = nn.ModuleList([Block()])
        self.head = nn.Linear(DIM, 4)

    def tokens(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)  # (N, 16, D)
        if self.cls is not None:
            t = torch.cat([self.cls.expand(len(t), -1, -1), t], 1)
        return t + self.pos

    def forward(self, x):
        h = self.blocks[0](self.tokens(x))[0]
        return self.head(h[:, 0] if self.cls is not None else h.mean(1))


@pytest.mark.parametrize("cls", [True, False], ids=["cls", "mean-pooled"])
def test_gradcam_on_a_vit_block_reshapes_tokens_to_the_patch_grid(cls):
    net = TinyViT(cls).double().eval()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with untouched(net):
        a = see.attribute(net, x, "gradcam", target=3, layer="blocks.0")
    with torch.enable_grad():
        h = net.blocks[0](net.tokens(x))[0]
        h.retain_grad()
        logit = net.head(h[:, 0] if cls else h.mean(1))[:, 3]
        (g,) = torch.autograd.grad(logit.sum(), h)
    grid = h[:, int(cls):].detach().transpose(1, 2).reshape(2, DIM, 4, 4)
    gg = g[:, int(cls):].transpose(1, 2).reshape(2, DIM, 4, 4)
    ref = torch.relu((gg.mean((2, 3))[:, :, None, None] * grid).sum(1, keepdim=True))
    ref = F.interpolate(ref, size=(16, 16), mode="bilinear", align_corners=False)
    assert a.shape == (2, 1, 16, 16) and torch.allclose(a, ref, atol=1e-10, rtol=0)


def test_vit_default_layer_is_refused_not_silently_the_patch_embedding():
    net = TinyViT().train()
    x = torch.rand(2, 3, 16, 16)
    with untouched(net, allow_raise=ValueError):
        with pytest.raises(ValueError) as e:
            see.attribute(net, x, "gradcam")
    msg = str(e.value)
    assert "\n" not in msg and "'patch'" in msg and "patch embedding" in msg and "layer=" in msg
    with pytest.raises(ValueError, match="neither a square grid of patches"):
        see.attribute(net, x, "gradcam", layer="blocks.0", cls_token=False)  # 17 tokens without a CLS: no grid
