import pytest
import torch

from lamaml.methods.replay import ReservoirMemory


def _inclusion_frequency(off_by_one: bool, trials=4000, capacity=5, stream=50, batch=10):
    counts = torch.zeros(stream)
    generator = torch.Generator().manual_seed(0)
    for _ in range(trials):
        memory = ReservoirMemory(capacity, generator, authors_off_by_one=off_by_one)
        for start in range(0, stream, batch):
            ids = torch.arange(start, start + batch)
            memory.add(ids.float()[:, None], ids, task=0)
        counts[memory.y[:memory.size]] += 1
    return counts / trials


def test_reservoir_keeps_each_sample_with_equal_probability():
    frequency = _inclusion_frequency(off_by_one=False)
    expected, std = 5 / 50, (0.1 * 0.9 / 4000) ** 0.5
    assert (frequency - expected).abs().max() < 5 * std
    assert abs(frequency[:5].mean() - expected) < 3 * std / 5 ** 0.5


def test_the_authors_off_by_one_favours_the_first_samples_as_predicted():
    # Keeping the n-th sample with probability M/(n+1) leaves the first M samples in memory
    # with probability (M+1)/(N+1) and every later one with M/(N+1).
    frequency = _inclusion_frequency(off_by_one=True)
    assert abs(frequency[:5].mean() - 6 / 51) < 0.007
    assert abs(frequency[5:].mean() - 5 / 51) < 0.003


def test_memory_fills_in_order_then_stays_at_capacity():
    memory = ReservoirMemory(4, torch.Generator().manual_seed(1))
    memory.add(torch.arange(3.0)[:, None], torch.arange(3), task=2)
    assert memory.size == 3 and memory.y[:3].tolist() == [0, 1, 2] and memory.t[:3].tolist() == [2, 2, 2]
    memory.add(torch.tensor([[3.0]]), torch.tensor([3]), task=3)
    assert memory.size == 4 and memory.y.tolist() == [0, 1, 2, 3]
    memory.add(torch.arange(4.0, 10.0)[:, None], torch.arange(4, 10), task=3)
    assert memory.size == 4 and memory.n_seen == 10 and len(set(memory.y.tolist())) == 4
    assert torch.equal(memory.x[:, 0].long(), memory.y)


def test_sampling_draws_only_stored_items_and_nothing_from_an_empty_memory():
    memory = ReservoirMemory(10, torch.Generator().manual_seed(2))
    assert memory.sample(5) is None
    memory.add(torch.ones(3, 2), torch.tensor([7, 8, 9]), task=0)
    x, y, t = memory.sample(10)
    assert len(y) == 3 and set(y.tolist()) <= {7, 8, 9}
    _, y, _ = memory.sample(3, replacement=False)
    assert sorted(y.tolist()) == [7, 8, 9]


def test_a_snapshot_does_not_see_later_additions():
    memory = ReservoirMemory(2, torch.Generator().manual_seed(3))
    memory.add(torch.zeros(2, 1), torch.tensor([0, 1]), task=0)
    frozen = memory.snapshot()
    memory.add(torch.zeros(50, 1), torch.full((50,), 5), task=1)
    assert frozen.y.tolist() == [0, 1] and 5 in memory.y.tolist()


def test_stored_logits_stay_with_their_samples_through_every_replacement():
    memory = ReservoirMemory(6, torch.Generator().manual_seed(4))
    for start in range(0, 60, 7):
        ids = torch.arange(start, start + 7)
        memory.add(ids.float()[:, None], ids, task=0, logits=torch.stack([ids.float(), -ids.float()], 1))
    assert memory.n_seen == 63 and memory.logits.shape == (6, 2)
    assert torch.equal(memory.logits[:, 0].long(), memory.y) and torch.equal(memory.logits[:, 1].long(), -memory.y)
    x, y, _, logits = memory.sample(4, replacement=False)
    assert torch.equal(logits[:, 0].long(), y) and torch.equal(x[:, 0].long(), y)
    restored = ReservoirMemory(6, torch.Generator())
    restored.load_state_dict(memory.state_dict())
    assert torch.equal(restored.logits, memory.logits) and torch.equal(memory.snapshot().logits, memory.logits)
    with pytest.raises(ValueError, match="logits for every sample or for none"):
        memory.add(torch.zeros(1, 1), torch.zeros(1, dtype=torch.long), task=0)
