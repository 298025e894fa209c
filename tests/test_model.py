"""IP2 modules: layer split, frozen-bottom cache, padding invariance, gates, losses, growth, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from ip2_stream.data.vocab import Vocab
from ip2_stream.model.checkpoint import load_checkpoint, save_checkpoint
from ip2_stream.model.ip2 import GrowableEmbedding, IP2Config, build_model
from ip2_stream.model.text import BottomCache, TitleEncoder, load_hf
from ip2_stream.train.losses import contrastive_losses, info_nce

TITLES = ["Tiger Woods wins the Masters", "Storm warning for Denver", 'A "quoted" title about markets']


@pytest.fixture(scope="module")
def encoder(tiny_encoder_path):
    return TitleEncoder(*load_hf(str(tiny_encoder_path)), trainable_layers=1, max_len=12)


def cfg_for(path, **kw):
    return IP2Config(text_encoder=str(path), trainable_layers=1, max_title_len=12, news_dim=40, entity_dim=10,
                     see_heads=2, see_ff=20, user_heads=4, history_len=8, **kw)


def test_split_encoder_equals_the_whole_model(encoder):
    ids, mask = encoder.tokenize(TITLES)
    full = encoder.model(input_ids=ids, attention_mask=mask).last_hidden_state
    split = encoder.top(encoder.bottom(ids, mask), mask)
    assert encoder.hidden_size == 32 and encoder.frozen_layers == 2
    torch.testing.assert_close(split, full)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("top_layers.0.") or ".layer.2." in n for n in trainable)


def test_bottom_cache_reuses_disk_and_invalidates_on_change(tiny_encoder_path, encoder, tmp_path):
    cache = BottomCache(encoder, tmp_path)
    rows = cache.rows(TITLES + TITLES[:1])
    assert rows.tolist() == [0, 1, 2, 0] and len(cache) == 3
    ids, mask = encoder.tokenize(TITLES)
    hidden, _ = cache.get(rows[:3])
    torch.testing.assert_close(hidden, encoder.bottom(ids, mask), atol=2e-3, rtol=2e-3)  # stored as float16
    again = BottomCache(encoder, tmp_path)  # same fingerprint: loaded from disk, nothing to encode
    assert len(again) == 3 and again.path == cache.path
    deeper = TitleEncoder(*load_hf(str(tiny_encoder_path)), trainable_layers=2, max_len=12)
    assert BottomCache(deeper, tmp_path).path != cache.path  # frozen depth changed
    other = TitleEncoder(*load_hf(str(tiny_encoder_path)), trainable_layers=1, max_len=12)
    with torch.no_grad():
        other.model.embeddings.word_embeddings.weight[5] += 1.0  # different frozen weights
    assert other.fingerprint() != encoder.fingerprint()


def _inputs(B=2, C=3, L=8, D=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for shape in ((B, C, D), (B, C, D), (B, L, D), (B, L, D))]


def test_padding_never_changes_a_score(tiny_encoder_path, encoder):
    torch.manual_seed(0)
    model = build_model(cfg_for(tiny_encoder_path), encoder, vocab_size=30).eval()
    c_t, c_e, h_t, h_e = _inputs()
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 5:] = True  # 3 items, left-padded
    mask[1, 2:] = True
    junk = torch.randn(2, 8, 40) * 50
    scores = model(c_t, c_e, h_t, h_e, mask)
    # whatever sits in padded history slots is ignored
    noisy_t = torch.where(mask[..., None], h_t, junk)
    noisy_e = torch.where(mask[..., None], h_e, -junk)
    torch.testing.assert_close(model(c_t, c_e, noisy_t, noisy_e, mask), scores)
    # a longer padded history gives the same scores
    pad = torch.zeros(2, 4, 40)
    longer = model(c_t, c_e, torch.cat([pad, h_t], 1), torch.cat([pad, h_e], 1), torch.cat([torch.zeros(2, 4, dtype=torch.bool), mask], 1))
    torch.testing.assert_close(longer, scores)
    # entity sequences: extra padding columns change nothing
    ids = torch.tensor([[3, 4, 7, 8, 0], [3, 5, 9, 0, 0]])
    sig = model.news.entity(ids)
    torch.testing.assert_close(model.news.entity(torch.cat([ids, torch.zeros(2, 6, dtype=torch.long)], 1)), sig)


def test_gates_are_probabilities_and_the_score_is_their_mix(tiny_encoder_path, encoder):
    torch.manual_seed(1)
    model = build_model(cfg_for(tiny_encoder_path), encoder, vocab_size=30).eval()
    c_t, c_e, h_t, h_e = _inputs(seed=1)
    mask = torch.ones(2, 8, dtype=torch.bool)
    scores = model(c_t, c_e, h_t, h_e, mask)
    a, b = model.last_gates["user"], model.last_gates["candidate"]
    assert a.shape == (2,) and b.shape == (2, 3)
    assert ((a > 0) & (a < 1)).all() and ((b > 0) & (b < 1)).all()
    u_t, u_e = model.user_vectors(h_t, h_e, mask)
    u = a[:, None] * u_t + (1 - a[:, None]) * u_e
    c = b[..., None] * c_t + (1 - b[..., None]) * c_e
    torch.testing.assert_close(scores, torch.einsum("bcd,bd->bc", c, u))
    avg = build_model(cfg_for(tiny_encoder_path, combine="average"), encoder, vocab_size=30).eval()
    ut, ue = avg.user_vectors(h_t, h_e, mask)
    expected = 0.5 * (torch.einsum("bcd,bd->bc", c_t, ut) + torch.einsum("bcd,bd->bc", c_e, ue))
    torch.testing.assert_close(avg(c_t, c_e, h_t, h_e, mask), expected)


def test_info_nce_against_a_hand_computed_case():
    # cos(a0,t0)=1, cos(a0,t1)=0, cos(a1,t0)=0.6, cos(a1,t1)=0.8
    anchors = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    targets = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    tau = 0.5
    l0 = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0)))
    l1 = -math.log(math.exp(0.8 / tau) / (math.exp(0.6 / tau) + math.exp(0.8 / tau)))
    assert float(info_nce(anchors, targets, tau)) == pytest.approx((l0 + l1) / 2, rel=1e-6)
    out = contrastive_losses(targets, anchors, targets, anchors, tau=tau)
    expected = (3 * float(info_nce(anchors, targets, tau)) + 2 * float(info_nce(targets, targets, tau))
                + 2 * float(info_nce(anchors, anchors, tau))) / 7
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-6)
    assert float(out["l_et"]) == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_entity_table_grows_without_touching_old_rows_or_optimizer_state():
    torch.manual_seed(0)
    table = GrowableEmbedding(5, 4)
    opt = torch.optim.AdamW(table.parameters(), lr=0.1)
    table(torch.tensor([1, 2])).sum().backward()
    opt.step()
    old = table.chunks[0].detach().clone()
    state = {k: v.clone() for k, v in opt.state[table.chunks[0]].items()}
    new = table.grow(3)
    opt.add_param_group({"params": [new]})
    assert len(table) == 8
    torch.testing.assert_close(table.chunks[0].detach(), old)
    for k, v in state.items():
        torch.testing.assert_close(opt.state[table.chunks[0]][k], v)
    before = new.detach().clone()
    opt.zero_grad()
    table(torch.tensor([6])).sum().backward()
    opt.step()
    assert not torch.equal(new.detach(), before)  # the new row trains
    assert (table(torch.arange(8)).norm(dim=-1) <= 1 + 1e-6).all()  # renormalised at lookup


def test_checkpoint_round_trip(tiny_encoder_path, encoder, tmp_path):
    torch.manual_seed(2)
    cfg = cfg_for(tiny_encoder_path)
    vocab = Vocab.build(["Q1", "Q2"], ["news"], ["newsus"])
    model = build_model(cfg, encoder, len(vocab))
    model.news.entity.table.grow(3)  # a grown table is stored as one
    model.eval()
    ids, mask = encoder.tokenize(TITLES[:2])
    ent = torch.tensor([[3, 4, 1, 7], [3, 4, 2, 0]])
    before = model.news(encoder.bottom(ids, mask), mask, ent, title_dropout=False)
    save_checkpoint(tmp_path / "ck", model, cfg, vocab, stage="test")
    assert {p.name for p in (tmp_path / "ck").iterdir()} == {"model.safetensors", "manifest.json"}
    back = load_checkpoint(tmp_path / "ck", encoder=encoder)
    assert back.vocab == vocab and back.manifest["stage"] == "test" and back.config == cfg
    back.model.eval()
    after = back.model.news(encoder.bottom(ids, mask), mask, ent, title_dropout=False)
    for x, y in zip(before, after):
        torch.testing.assert_close(x, y)
    other = TitleEncoder(*load_hf(str(tiny_encoder_path)), trainable_layers=2, max_len=12)
    with pytest.raises(Exception, match="text encoder differs"):
        load_checkpoint(tmp_path / "ck", encoder=other)
