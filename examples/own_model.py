"""La-MAML on your own network and your own stream of tasks."""
import torch
from torch import nn

import lamaml

torch.manual_seed(0)
centres = torch.randn(4, 2, 8) * 3                       # 4 tasks, 2 classes each, 8 features
def make_split(task, n):                                 # toy data: noisy class centres
    y = torch.randint(0, 2, (n,))
    return centres[task, y] + torch.randn(n, 8), y + 2 * task

tasks = [(make_split(t, 200), make_split(t, 100)) for t in range(4)]   # (train, test) per task
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 8))
result = lamaml.fit(model, tasks, method="la-maml", glances=3, alpha_init=0.1, opt_lr=0.3, memories=50)
print(f"RA {result.ra:.1f}  BTI {result.bti:+.1f}")
print(result.acc_matrix.round(1))
