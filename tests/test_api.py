import runpy

import pytest
import torch
from torch import nn

import lamaml
from conftest import REPO


def test_the_api_page_example_is_the_example_file_and_it_learns(capsys):
    example = (REPO / "examples" / "own_model.py").read_text()
    assert example.split('"""', 2)[2].strip() in (REPO / "docs" / "api.md").read_text()
    runpy.run_path(str(REPO / "examples" / "own_model.py"), run_name="__main__")
    ra = float(capsys.readouterr().out.split()[1])
    assert ra > 90.0           # four easy tasks: far above the 12.5% of chance over 8 classes


def test_fit_accepts_datasets_and_rejects_a_model_with_too_few_outputs():
    data = torch.utils.data.TensorDataset(torch.randn(30, 4), torch.randint(0, 3, (30,)))
    result = lamaml.fit(nn.Linear(4, 3), [(data, data)], method="c-maml", glances=1)
    assert result.acc_matrix.shape == (1, 1)
    with pytest.raises(lamaml.UserError, match="the model has 2 outputs but the tasks' labels go up to 2"):
        lamaml.fit(nn.Linear(4, 2), [(data, data)])
    with pytest.raises(lamaml.UserError, match="alpha_init"):
        lamaml.fit(nn.Linear(4, 3), [(data, data)], alpha_init="fast")
