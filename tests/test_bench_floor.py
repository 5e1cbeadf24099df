"""bench/bench_vision.py --floor: the FLOPs it counts per update are the method's arithmetic, by hand."""
import importlib.util
from pathlib import Path

import pytest
import torch

spec = importlib.util.spec_from_file_location("bench_vision", Path(__file__).parents[1] / "bench" / "bench_vision.py")
bench_vision = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_vision)


def pc_cnn_macs(side: int, outputs: int) -> tuple[int, int]:
    """Multiply-adds of one image's forward pass through the pc-cnn (3x3 stride-2 convs of 160 channels
    down to 4x4 maps, then 2560 -> h -> h -> outputs, h = 320 on 32x32 images, 640 on 64x64), and those of
    its first conv (which forms no input gradient)."""
    convs, channels, hidden = [], 3, 320 if side <= 32 else 640
    while side > 4:
        side //= 2
        convs.append(side * side * 160 * channels * 9)
        channels = 160
    return sum(convs) + 2560 * hidden + hidden * hidden + hidden * outputs, convs[0]


@pytest.mark.parametrize("name, side, outputs", [("cifar100", 32, 100), ("tinyimagenet", 64, 200)])
def test_er_counts_its_batch_and_its_replayed_sample_forward_and_back(name, side, outputs):
    forward, first_conv = pc_cnn_macs(side, outputs)
    per_image = 2 * (3 * forward - first_conv)     # forward, weight gradients, input gradients but the first's
    row = bench_vision.time_updates(name, "er", "single", torch.device("cpu"), updates=1, warmup=2,
                                    overrides={}, count_flops=True)
    images = row["batch"] + 1                      # ER's preset replays one stored sample per step
    assert row["gflop_per_update"] * 1e9 == pytest.approx(images * per_image, rel=1e-12)


def test_at_task_times_an_update_after_that_many_tasks_each_with_its_memory_filled():
    """A-GEM's union-sample reference takes one gradient on every stored image of the past tasks, 10
    each: from task 1 to task 3 an update grows by two tasks' memories, forward and back."""
    forward, first_conv = pc_cnn_macs(32, 100)
    per_image = 2 * (3 * forward - first_conv)
    counted = {task: bench_vision.time_updates("cifar100", "a-gem", "single", torch.device("cpu"), updates=1,
                                               warmup=2, overrides={"reference": "union-sample"},
                                               count_flops=True, at_task=task)["gflop_per_update"]
               for task in (1, 3)}
    assert (counted[3] - counted[1]) * 1e9 == pytest.approx(2 * 10 * per_image, rel=1e-12)
    with pytest.raises(bench_vision.UserError, match="--at-task 20: cifar100 has tasks 1 to 19"):
        bench_vision.time_updates("cifar100", "gem", "single", torch.device("cpu"), updates=1, warmup=2,
                                  overrides={}, at_task=20)
