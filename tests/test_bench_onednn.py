"""bench/conv_batch1.py --onednn: oneDNN's verbose log read into time by kind, as BENCHMARKS.md reports it."""
import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("conv_batch1", Path(__file__).parents[1] / "bench" / "conv_batch1.py")
conv_batch1 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(conv_batch1)

# Lines of the shape oneDNN 3.x prints (abridged from a real log of torch 2.13.0+cpu)
WARM = "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,forward_training,src:f32,,mb2_ic160oc160,9.0"
LOG = "\n".join([
    "onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind,exec_time",
    WARM,                                                           # before the mark: a warm-up pass
    conv_batch1.MARK,
    "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:abcd::f0,,160x160x3x3,0.5",
    "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:blk,undef,src:f32::blocked:abcd::f0,,2x160x16x16,0.25",
    "onednn_verbose,v1,primitive,exec,cpu,convolution,brgconv_strided:avx512_core,backward_data,src:f32,,mb2,1.5",
    "onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,backward_weights,src:f32,,mb2_ic160oc160,0.5",
    "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32::blocked:ABcd16b16a::f0,,160x160x3x3,0.3",
    "some other output, 1.0",
])


def test_exec_lines_after_the_mark_are_summed_by_kind_and_averaged_over_the_passes():
    spent = conv_batch1.split_verbose(LOG, "160x160x3x3", passes=2)
    assert spent == pytest.approx({"weight reorders": 0.4, "activation reorders": 0.125, "convolution": 1.0})


def test_a_reorder_of_another_weight_shape_is_an_activation_reorder():
    spent = conv_batch1.split_verbose(LOG, "160x3x3x3", passes=1)
    assert spent["activation reorders"] == pytest.approx(0.25 + 0.5 + 0.3)
    assert "weight reorders" not in spent


def test_no_mark_or_no_onednn_work_after_it_is_none():
    assert conv_batch1.split_verbose(WARM, "160x160x3x3", passes=1) is None
    assert conv_batch1.split_verbose(WARM + "\n" + conv_batch1.MARK + "\n", "160x160x3x3", passes=1) is None


def test_a_real_batch_of_two_spends_time_in_convolutions_and_weight_reorders():
    spent = conv_batch1.onednn_split(2, 160, 8, channels_last=False)
    assert spent is not None and spent["convolution"] > 0 and spent["weight reorders"] > 0
