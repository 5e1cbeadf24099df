"""``lamaml reproduce``: the paper's MNIST table (table1.py, with its claims judged in claims.py) and
its appendix analyses as figures (figures.py), from sweeps recorded in a results store."""
