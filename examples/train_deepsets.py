"""Train a small permutation-invariant jet tagger (Deep Sets) on a jetlib store, on the CPU.

    jetlib generate --events 40000 --files 4 --out data/ && ls data/*.root > files.txt
    jetlib skim files.txt --out store/ --entries-per-task 2500
    jetlib stats store/
    python examples/train_deepsets.py store/ --epochs 3

Every block (PF candidates, SVs, lost tracks, leptons) goes through its own per-node MLP
(1×1 convolutions), masked mean pooling keeps padding out, and the pooled vectors with the jet
features feed a classifier over all the store's classes. Every fifth task's shard is held out
(chosen by name, so that a resumed skim does not move shards between the sets); the script
prints the b vs udsg ROC AUC on it: (p_b + p_bb) / (p_b + p_bb + p_uds + p_g).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import jetlib


class DeepSets(nn.Module):
    def __init__(self, block_features: dict[str, int], n_jet: int, n_classes: int, width: int = 64):
        super().__init__()
        self.phi = nn.ModuleDict({
            b: nn.Sequential(nn.Conv1d(f, width, 1), nn.ReLU(), nn.Conv1d(width, width, 1), nn.ReLU())
            for b, f in block_features.items()
        })  # fmt: skip
        n_in = width * len(block_features) + n_jet
        self.rho = nn.Sequential(nn.Linear(n_in, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pooled = []
        for b, phi in self.phi.items():
            mask = batch[f"{b}_mask"]  # (B, 1, L)
            h = phi(batch[f"{b}_features"]) * mask
            pooled.append(h.sum(-1) / mask.sum(-1).clamp(min=1))
        return self.rho(torch.cat([*pooled, batch["jet_features"]], dim=1))


def roc_auc(score: np.ndarray, is_signal: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) statistic, ties averaged."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    s = score[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n1 = is_signal.sum()
    n0 = len(score) - n1
    return float((ranks[is_signal].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def b_vs_udsg(logits: np.ndarray, label: np.ndarray, classes: list[str]) -> float:
    p = torch.softmax(torch.from_numpy(logits), 1).numpy()
    sig = [classes.index(c) for c in ("b", "bb") if c in classes]
    bkg = [classes.index(c) for c in ("uds", "g") if c in classes]
    keep = np.isin(label, sig + bkg)
    ps, pb = p[:, sig].sum(1), p[:, bkg].sum(1)
    score = ps / np.maximum(ps + pb, 1e-12)
    return roc_auc(score[keep], np.isin(label[keep], sig))


def split_shards(s: jetlib.Store, every: int = 5) -> tuple[list[str], list[str]]:
    """(training, held-out) shard names: every ``every``-th task's shard is held out, by the
    task number in its name (``part-00004.h5``: task 4), which the skim fixes when it plans
    the store, so a resumed skim that redoes a failed task moves no shard between the sets
    (positions in ``store.shards()`` would shift)."""
    names = [e.name for e in s.shards() if e.jets]
    if len(names) < 2:
        raise SystemExit(f"{s.path}: need at least 2 shards to hold some out (skim with a smaller --entries-per-task)")
    test = [n for n in names if int(n.split("-")[1].split(".")[0]) % every == every - 1] or names[-1:]
    return [n for n in names if n not in test], test


def train(store: str, *, epochs: int = 3, batch_size: int = 512, lr: float = 3e-3, seed: int = 1,
          max_batches: int | None = None, workers: int = 0, log=print) -> dict:  # fmt: skip
    """Train, then evaluate on the held-out shards. Returns {"auc", "seconds", "train_jets"}."""
    torch.manual_seed(seed)
    s = jetlib.Store(store)
    train_shards, test_shards = split_shards(s)
    train_r = jetlib.Reader(s, batch_size=batch_size, shuffle=True, seed=seed, standardize=True,
                            shards=train_shards, truth=False)  # fmt: skip
    test_r = jetlib.Reader(s, batch_size=4096, shuffle=False, standardize=True, shards=test_shards,
                           truth=False, verify=False)  # fmt: skip
    model = DeepSets({b: len(info["features"]) for b, info in s.blocks.items()}, len(s.jet_features), len(s.classes))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(train_r, batch_size=None, num_workers=workers)
    t0 = time.perf_counter()
    seen = 0
    for epoch in range(epochs):
        train_r.set_epoch(epoch)
        model.train()
        total, nb = 0.0, 0
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            opt.zero_grad()
            loss = loss_fn(model(batch), batch["label"])
            loss.backward()
            opt.step()
            total += loss.item()
            nb += 1
            seen += len(batch["label"])
        log(f"epoch {epoch}: loss {total / max(nb, 1):.4f} over {nb} batches ({time.perf_counter() - t0:.0f} s since the start)")
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for batch in test_r:
            logits.append(model(batch).numpy())
            labels.append(batch["label"].numpy())
    auc = b_vs_udsg(np.concatenate(logits), np.concatenate(labels), s.classes)
    log(f"held-out: {sum(len(x) for x in labels):,} jets, b vs udsg ROC AUC = {auc:.4f}")
    return {"auc": auc, "seconds": time.perf_counter() - t0, "train_jets": seen}


def main(argv: list[str] | None = None) -> None:
    class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
        pass

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=Formatter)
    ap.add_argument("store", help="store folder, with `jetlib stats` run on it")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs")
    ap.add_argument("--batch-size", type=int, default=512, help="jets per batch")
    ap.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate")
    ap.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    a = ap.parse_args(argv)
    train(a.store, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, workers=a.workers)


if __name__ == "__main__":
    main()
