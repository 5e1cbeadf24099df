"""The closed-form backend is a drop-in for the autograd backend of the La-MAML family."""
import pytest
import torch

from lamaml.config import resolve_config
from lamaml.engine import run
from lamaml.methods import method_class
from lamaml.models.mlp import MLP

VARIANTS = [{}, {"relu_in_inner": False}, {"meta_loss": "last"}, {"inner_steps": 3}, {"inner_clamp": 0.01},
            {"alpha_init": 0.5, "grad_clip_norm": None}, {"memories": 0}]


def _pair(name, factored=True, **params):
    params = {"memories": 15, **params}
    methods = []
    for fast in (True, False):
        torch.manual_seed(0)
        cls = method_class(name)
        methods.append(cls(MLP(20, (8, 8), 5), cls.Params(fast_path=fast, factored=factored, **params),
                           torch.Generator().manual_seed(1)))
    return methods


def _moved(after, before):
    """How far ``after`` is from ``before``, relative to ``before``'s norm, over all entries together
    (per entry would divide by the zero-initialised biases)."""
    flat = lambda d: torch.cat([d[k].detach().reshape(-1) for k in before])  # noqa: E731
    return ((flat(after) - flat(before)).norm() / flat(before).norm()).item()


def _relative(a, b):
    return max(((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-12)).item() for k in b)


@pytest.mark.parametrize("factored", [True, False], ids=["factored", "stepped"])
@pytest.mark.parametrize("name", ["la-maml", "sync-la-maml", "c-maml"])
@pytest.mark.parametrize("params", VARIANTS, ids=[",".join(v) or "defaults" for v in VARIANTS])
def test_fast_and_reference_paths_agree_in_float64_over_many_steps(name, params, factored, double):
    fast, reference = _pair(name, factored, **params)
    # the factored form holds without an element-wise clamp; with one, the closed form steps every weight
    expected = "factored" if factored and "inner_clamp" not in params else "closed-form"
    assert fast.backend.name == expected and reference.backend.name == "autograd"
    if expected == "factored":   # the fast weights' analysis takes the closed form for the weights it records
        for step in range(40):
            x, y = torch.randn(10, 20, generator=torch.Generator().manual_seed(step)), torch.arange(10) % 5
            fast.observe(x, y, 0, first_sight=True)
            reference.observe(x, y, 0, first_sight=True)
        assert fast.backend.closed_form is None
        assert _relative(fast.weights, reference.weights) < 1e-10 and _relative(fast.alpha, reference.alpha) < 1e-10
    fast.record_fast_weights = reference.record_fast_weights = True
    initial_weights = {k: w.detach().clone() for k, w in reference.weights.items()}
    initial_alpha = {k: a.detach().clone() for k, a in reference.alpha.items()}
    data = torch.Generator().manual_seed(5)
    for step in range(80):
        x, y = torch.randn(10, 20, generator=data), torch.randint(0, 5, (10,), generator=data)
        loss_fast = fast.observe(x, y, step // 20, first_sight=step % 2 == 0)
        loss_reference = reference.observe(x, y, step // 20, first_sight=step % 2 == 0)
        assert torch.allclose(loss_fast, loss_reference, rtol=1e-10)
    assert _relative(fast.weights, reference.weights) < 1e-5
    assert _relative(fast.alpha, reference.alpha) < 1e-5
    assert _relative(fast.fast_weights, reference.fast_weights) < 1e-5
    # The agreement is not vacuous: both learners moved far from where they started (C-MAML's rates
    # are fixed by design, so they stay exactly at alpha_init).
    assert _moved(fast.weights, initial_weights) > 0.1
    if fast.options.learn_lr:
        assert _moved(fast.alpha, initial_alpha) > 0.01
    else:
        assert _moved(fast.alpha, initial_alpha) == 0.0


def test_the_closed_form_applies_only_where_it_holds_whatever_the_model_is_called():
    def backend(name, model=None, **params):
        cls = method_class(name)
        return cls(model or MLP(20, (8,), 5), cls.Params(**params), torch.Generator().manual_seed(0)).backend.name
    nn = torch.nn
    assert backend("la-maml") == "factored"                                 # the default
    assert backend("la-maml", factored=False) == "closed-form"              # one option away
    assert backend("la-maml", inner_clamp=0.01) == "closed-form"            # the factored form needs no clamp
    assert backend("la-maml", fast_path=False) == "autograd"                # one option away
    assert backend("la-maml", second_order=True) == "autograd"              # needs autograd through steps
    assert backend("la-er") == "autograd"                                   # weights follow the replay loss
    assert backend("la-maml", nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 5))) == "factored"
    assert backend("la-maml", nn.Sequential(nn.Linear(20, 5))) == "closed-form"          # one layer is an MLP too
    assert backend("la-maml", nn.Sequential(nn.Linear(20, 8), nn.Tanh(), nn.Linear(8, 5))) == "autograd"
    assert backend("la-maml", nn.Sequential(nn.Linear(20, 8, bias=False), nn.ReLU(), nn.Linear(8, 5))) == "autograd"
    assert backend("la-maml", nn.Sequential(nn.Linear(20, 20), nn.ReLU(), nn.Dropout(0.0), nn.Linear(20, 5),
                                           nn.Softmax(dim=1))) == "autograd"         # computes something else


def test_task_heads_move_a_learner_to_autograd():
    cls = method_class("la-maml")
    learner = cls(MLP(20, (8,), 4), cls.Params(), torch.Generator().manual_seed(0))
    learner.use_task_heads(torch.tensor([[True, True, False, False], [False, False, True, True]]))
    assert learner.backend.name == "autograd"


def test_the_model_parameters_are_views_of_one_flat_buffer():
    cls = method_class("la-maml")
    model = MLP(20, (8,), 5)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    method = cls(model, cls.Params(), torch.Generator().manual_seed(0))
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])
        assert value.untyped_storage().data_ptr() == method.state.weights.untyped_storage().data_ptr()


def test_a_short_run_gives_the_same_accuracy_matrix_on_both_paths(data_dir, double):
    """In float64 the matrices are identical. In float32 the two paths sum in different orders, so
    the weights differ by rounding (1e-7 relative) and an online learner amplifies that: entries
    then differ by up to 0.5-1.5 points on short runs (RA by about 0.1-0.6), less than seed noise."""
    results = [run(resolve_config("mnist-rotations", "la-maml", {"samples_per_task": 100, "fast_path": fast},
                                  tasks=3), data_dir=data_dir, download=False) for fast in (True, False)]
    assert results[0]["acc_matrix"] == results[1]["acc_matrix"]
    assert results[0]["task_losses"] == pytest.approx(results[1]["task_losses"], rel=1e-9)
