"""minilm-l6 from the wheel: the same embeddings as sentence-transformers, offline, batch-invariant; the topic head."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import seethrough as see
from seethrough.testing import untouched
from seethrough.zoo import text as zt

DOC = Path(__file__).resolve().parents[1] / "docs" / "text.md"


def _doc() -> str:
    return " ".join(DOC.read_text(encoding="utf-8").split())


SENTENCES = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today.",
             "It is raining in the mountains."]


@pytest.fixture(scope="module")
def encoder():
    return see.zoo.load("minilm-l6")


def test_embeddings_equal_sentence_transformers(encoder):
    """The peer: the package's own SentenceTransformer (Transformer → mean Pooling → Normalize, its modules.json)."""
    from sentence_transformers import SentenceTransformer

    model, prep = encoder
    t = prep(SENTENCES)
    with untouched(model):
        ours = _embed(model, t)
    peer = torch.as_tensor(SentenceTransformer(str(zt.model_dir()), device="cpu").encode(SENTENCES))
    assert torch.allclose(ours, peer, atol=2e-6), (ours - peer).abs().max()
    assert torch.allclose(ours.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-6)


def _embed(model, t):
    with see.hooks(model), torch.no_grad():
        return model(t.ids, t.mask)


def test_paraphrases_are_closer_than_unrelated_sentences(encoder):
    model, prep = encoder
    e = _embed(model, prep(SENTENCES))
    cos = e @ e.T
    assert cos[0, 1] > 0.6 > max(cos[0, 2], cos[0, 3])


def test_a_batch_gives_what_one_sentence_at_a_time_gives(encoder):
    model, prep = encoder
    together = _embed(model, prep(SENTENCES))  # padded to the longest sentence
    alone = torch.cat([_embed(model, prep(s)) for s in SENTENCES])
    assert torch.allclose(together, alone, atol=1e-5)


def test_float64_in_float64_out_and_a_fixed_result(encoder):
    model, prep = encoder
    t = prep(SENTENCES[:2])
    m64 = see.zoo.text.SentenceEncoder(zt.backbone().double()).eval()
    e64 = _embed(m64, t)
    assert e64.dtype == torch.float64
    assert torch.allclose(e64.float(), _embed(model, t), atol=1e-5)
    assert torch.equal(_embed(model, t), _embed(model, t))


def test_similarity_model_is_the_cosine_of_the_two_embeddings(encoder):
    model, prep = encoder
    sim = see.zoo.similarity(SENTENCES[0])
    t = prep(SENTENCES[1:])
    with untouched(sim):
        s = _embed(sim, t)
    ref = _embed(model, prep(SENTENCES[:1]))[0]
    assert s.shape == (3, 1)
    assert torch.allclose(s[:, 0], _embed(model, t) @ ref, atol=1e-6)


def test_bad_text_gets_one_line(encoder):
    _, prep = encoder
    for bad, msg in [("", "text is empty"), ("   ", "text is empty"), (["fine", ""], "text 1 is empty"),
                     ("word " * 600, "has 602 tokens but the model reads at most 512"), (3, "read sentences, not a int"),
                     ([], "non-empty list of sentences")]:
        with pytest.raises((ValueError, TypeError), match=msg) as e:
            prep(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="is not a text model"):
        see.zoo.tokenizer("lenet-digits")


def test_a_sentence_of_512_tokens_is_accepted_and_513_refused(encoder):
    _, prep = encoder
    assert prep("word " * 510).ids.shape == (1, 512)  # 510 words + [CLS] + [SEP]
    with pytest.raises(ValueError, match="513 tokens"):
        prep("word " * 511)


_OFFLINE = textwrap.dedent("""
    import socket, sys
    attempts = []
    real = socket.socket.connect
    def connect(self, address):
        attempts.append(address)
        raise OSError("network blocked by the test")
    socket.socket.connect = connect
    socket.socket.connect_ex = lambda self, address: attempts.append(address) or 101
    import seethrough as see
    model, prep = see.zoo.load("minilm-l6")
    t = prep("offline sentence")
    e = model(t.ids, t.mask)
    import os
    print(e.shape[1], os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"), len(attempts))
""")


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_loading_and_embedding_attempt_no_network_connection():
    """A socket that records and refuses every connection: loading and one embedding make no attempt."""
    r = _run([sys.executable, "-c", _OFFLINE])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["384", "1", "1", "0"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed")
def test_loading_works_in_a_network_namespace_without_network():
    """``unshare -n``: a process with no network interface at all (root only) loads and embeds."""
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here ({probe.stderr.decode().strip()}); the socket test still runs")
    r = _run(["unshare", "-n", sys.executable, "-c", _OFFLINE])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[0] == "384"


def test_topic_classifier_reaches_its_bar_on_held_out_words():
    model, prep = see.zoo.load("minilm-l6-topics")
    assert see.zoo.labels("minilm-l6-topics") == list(zt.TOPICS)
    x, y = zt.topic_sentences("test", n_per_topic=zt._HEAD_CONFIG["n_per_topic"], seed=zt._HEAD_CONFIG["data_seed"])
    with untouched(model), see.hooks(model), torch.no_grad():
        pred = torch.cat([model(t.ids, t.mask).argmax(1) for t in (prep(x[i:i + 100]) for i in range(0, len(x), 100))])
    acc = float((pred == torch.tensor(y)).float().mean())
    assert acc >= zt.MIN_TEST_ACCURACY
    assert f"it reaches **{100 * acc:.1f} %**" in _doc()
    train_words = {w for s in zt.topic_sentences("train", 150)[0] for w in s.split()}
    assert "smartwatch" in " ".join(x) and "smartwatch" not in train_words  # held-out words really are new


def test_topic_head_is_cached_with_its_recipe():
    from seethrough.zoo.cache import load_checked

    zt.topic_classifier()
    state, why = load_checked(zt._cache_path(), zt._recipe())
    assert state is not None, why
    assert set(state) == {"weight", "bias"} and state["weight"].shape == (4, 384)


def test_topic_sentences_are_seeded_and_split_by_words():
    a, ya = zt.topic_sentences("train", 5, seed=3)
    assert (a, ya) == zt.topic_sentences("train", 5, seed=3)
    assert a != zt.topic_sentences("train", 5, seed=4)[0]
    with pytest.raises(ValueError, match="split must be"):
        zt.topic_sentences("valid")
