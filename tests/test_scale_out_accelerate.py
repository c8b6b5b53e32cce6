"""Data-parallel training through accelerate (skorch.hf.AccelerateMixin), issue 16.

Two CPU processes with the gloo backend, started by ``torch.distributed.run``
(torchrun) in a subprocess, train one tiny detector together; then one
process in this one. No GPU is needed.
"""

import json
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

from skvqad import VQVAEAnomalyDetector
from skvqad._net import AcceleratedVQVAENet

from .conftest import TINY, paste_square, stripes

accelerate = pytest.importorskip("accelerate")

#: Each process keeps 2 of the 4 batches of 8 images of an epoch.
N_TRAIN, N_PROCESSES = 32, 2
PARAMS = {**TINY, "max_epochs": 3, "augment": "hflip"}

#: What each process runs: fit with an Accelerator, write what it ended with.
SCRIPT = """
import json, pickle, sys
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator

from skvqad import VQVAEAnomalyDetector

out = Path(sys.argv[1])
accelerator = Accelerator(cpu=True)  # gloo on the CPU processes of torchrun
detector = VQVAEAnomalyDetector(
    **json.loads((out / "params.json").read_text()),
    memory=out / "cache",
    accelerator=accelerator,
).fit(np.load(out / "train.npy"))
history = detector.net_.history
torch.save(
    {
        "world_size": accelerator.num_processes,
        "state": detector.net_.module_.state_dict(),
        "scores": detector.score_samples(np.load(out / "test.npy")),
        "loss": history[:, "train_loss"],
        "samples": [sum(b["train_batch_size"] for b in e["batches"]) for e in history],
        "restarted": history[:, "restarted_codes"],
    },
    out / f"rank{accelerator.process_index}.pt",
)
if accelerator.is_main_process:  # only rank 0 saves the detector
    (out / "detector.pkl").write_bytes(pickle.dumps(detector))
"""


@pytest.fixture(scope="module")
def test_images():
    return paste_square(stripes(4, seed=2))[0]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, test_images):
    """What each of the two processes of one torchrun training wrote."""
    out = tmp_path_factory.mktemp("ddp")
    (out / "train.py").write_text(textwrap.dedent(SCRIPT))
    (out / "params.json").write_text(json.dumps(PARAMS))
    np.save(out / "train.npy", stripes(N_TRAIN, seed=1))
    np.save(out / "test.npy", test_images)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(N_PROCESSES), str(out / "train.py"), str(out),
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun did not finish in 240 s:\n{exc.stderr}")
    assert result.returncode == 0, (
        f"torchrun failed ({result.returncode}):\n{result.stderr[-4000:]}"
    )
    results = [
        torch.load(out / f"rank{rank}.pt", weights_only=False)
        for rank in range(N_PROCESSES)
    ]
    return out, results


def test_processes_end_with_the_same_network(ranks):
    _, (first, second) = ranks
    assert first["world_size"] == second["world_size"] == N_PROCESSES
    # The EMA codebook follows the counts and sums of both processes, dead
    # codes restart from rank 0's draws, and the batch-norm statistics are
    # rank 0's at the end: every weight and buffer is the same, bit for bit.
    assert first["state"].keys() == second["state"].keys()
    differ = [
        name
        for name, tensor in first["state"].items()
        if not torch.equal(tensor, second["state"][name])
    ]
    assert not differ, f"processes differ in {differ}"
    assert_array_equal(first["scores"], second["scores"])
    assert first["restarted"] == second["restarted"]
    # The restart broadcast is exercised: some code was dead after epoch 1.
    assert first["restarted"][0] > 0


def test_each_process_trains_on_half_of_every_epoch(ranks):
    _, results = ranks
    for result in results:
        assert result["samples"] == [N_TRAIN // N_PROCESSES] * PARAMS["max_epochs"]
        assert result["loss"][-1] < result["loss"][0]


def test_rank_0_saves_a_detector_that_scores_anywhere(ranks, test_images):
    out, (first, _) = ranks
    # Unpickled here, outside any process group, on the CPU.
    detector = pickle.loads((out / "detector.pkl").read_bytes())
    assert isinstance(detector.net_, AcceleratedVQVAENet)
    assert detector.net_.device == "cpu"
    # torchrun's processes ran 1 thread each: another summation order here.
    assert_allclose(detector.score_samples(test_images), first["scores"], rtol=1e-5)


def test_several_processes_bypass_memory(ranks):
    out, _ = ranks
    # No cache lock may make one process wait for another inside training.
    assert not list((out / "cache").rglob("output.pkl"))


@pytest.fixture
def accelerator():
    """A one-process CPU Accelerator, its global state reset afterwards."""
    yield accelerate.Accelerator(cpu=True)
    # As accelerate's own tests do: the next Accelerator starts afresh.
    accelerate.state.AcceleratorState._reset_state(reset_partial_state=True)


def test_one_process_trains_the_plain_network(accelerator, grey_images, capsys):
    plain = VQVAEAnomalyDetector(**TINY).fit(grey_images)
    accelerated = VQVAEAnomalyDetector(**TINY, accelerator=accelerator)
    accelerated.fit(grey_images)
    # verbose=0 prints nothing (accelerate's print would print the table).
    assert capsys.readouterr().out == ""
    assert isinstance(accelerated.net_, AcceleratedVQVAENet)
    assert accelerated.net_.device == "cpu"
    # Same batches, same draws, same arithmetic: exactly the same network.
    expected = plain.net_.module_.state_dict()
    for name, tensor in accelerated.net_.module_.state_dict().items():
        assert torch.equal(tensor, expected[name]), name
    assert_array_equal(
        accelerated.score_samples(grey_images), plain.score_samples(grey_images)
    )


def test_accelerated_detector_pickles_and_clones(accelerator, grey_images):
    detector = VQVAEAnomalyDetector(**TINY, accelerator=accelerator)
    detector.fit(grey_images)
    loaded = pickle.loads(pickle.dumps(detector))
    assert_array_equal(
        loaded.score_samples(grey_images), detector.score_samples(grey_images)
    )
    # accelerate.Accelerator deep-copies as itself, so clone shares it.
    twin = clone(detector)
    assert twin.accelerator is accelerator and not hasattr(twin, "net_")
    # After training the accelerator holds neither the net nor its loaders
    # (whose dataset is the training images): it pickles small.
    assert len(pickle.dumps(accelerator)) < 20_000


def test_one_process_uses_memory_apart_from_plain_fits(
    accelerator, grey_images, tmp_path
):
    def stored():
        return sorted(tmp_path.rglob("output.pkl"))

    detector = VQVAEAnomalyDetector(**TINY, memory=tmp_path, accelerator=accelerator)
    detector.fit(grey_images)
    (result,) = stored()
    written = result.stat().st_mtime_ns
    detector.fit(grey_images)  # loaded, not trained and stored again
    assert stored() == [result] and result.stat().st_mtime_ns == written
    # The accelerator's settings are in the key: a plain fit trains its own.
    VQVAEAnomalyDetector(**TINY, memory=tmp_path).fit(grey_images)
    assert len(stored()) == 2
