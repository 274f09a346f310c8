"""Two real DDP ranks (torch.distributed, gloo on CPU) step through an epoch together: every
step all-reduces, so a rank with one batch more than the other would wait forever."""

from __future__ import annotations

import socket
import sys
import textwrap

import pytest

pytestmark = pytest.mark.torch

WORKER = textwrap.dedent('''
    import sys, torch, torch.distributed as dist
    from jetlib.reader import Reader
    store, rank, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    steps = 0
    for epoch in range(3):
        r = Reader(store, batch_size=70, weights="flat", rank=rank, world_size=2, seed=epoch, buffer_jets=500)
        for batch in torch.utils.data.DataLoader(r, batch_size=None, num_workers=0):
            t = torch.tensor([float(len(batch["label"]))])
            dist.all_reduce(t)  # what DDP does at every backward pass
            steps += 1
    print("steps", steps)
    dist.destroy_process_group()
''')


def test_two_ranks_finish_the_epoch_together(store_factory, tmp_path):
    pytest.importorskip("torch.distributed")
    import subprocess

    from jetlib.weights import compute_weights

    path = store_factory(fmt="parquet", jets_per_shard=(900, 800, 700), class_probs=[0.5, 0.3, 0.15, 0.05])
    compute_weights(path, bins="pt=15:300:log6,eta=-2.5:2.5:4")
    script = tmp_path / "rank.py"
    script.write_text(WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(rank), port],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]  # fmt: skip
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail("a rank waited forever in all_reduce: the ranks had different numbers of batches")
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    steps = [int(out.split()[-1]) for out, _ in outs]
    assert steps[0] == steps[1] > 0
