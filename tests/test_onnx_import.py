"""ONNX import: exported models match the PyTorch capture; hand-built graphs; clear errors."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from spikecast.frontends.onnx.reader import load_onnx, onnx_to_fx, read_model  # noqa: E402
from spikecast.frontends.torch_fx import capture  # noqa: E402
from spikecast.ir.graph import AvgPool2d, Conv2d, Linear, Network  # noqa: E402
from spikecast.schemes import convert, get_recipe  # noqa: E402
from spikecast.zoo.models import get_architecture  # noqa: E402


def _export(model: nn.Module, shape: tuple[int, ...], opset: int, **kwargs) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(
        model, (torch.zeros(1, *shape),), buf, dynamo=False, opset_version=opset, **kwargs
    )
    return buf.getvalue()


def _kinds(net: Network) -> list[str]:
    return [type(layer).__name__ for layer in net.layers]


def _randomise_bn(bn: nn.BatchNorm1d | nn.BatchNorm2d, gen: torch.Generator) -> None:
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=gen))
        bn.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.weight.copy_(torch.randn(n, generator=gen))
        bn.bias.copy_(torch.randn(n, generator=gen))


def _bn_model() -> nn.Module:
    gen = torch.Generator().manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Flatten(),
        nn.Linear(24, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Dropout(0.5), nn.Linear(10, 3),
    )
    for m in model:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            _randomise_bn(m, gen)
    return model


class Residual(nn.Module):
    """conv-relu, then a residual block relu(conv(relu(conv(y))) + y), pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.stem(x))
        y = F.relu(self.conv2(F.relu(self.conv1(y))) + y)
        return self.fc(torch.flatten(F.max_pool2d(y, 2), 1))


class Branches(nn.Module):
    """Two convolutions of the input concatenated along channels, then conv and linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 3, 3, padding=1)
        self.b = nn.Conv2d(1, 2, 1)
        self.c = nn.Conv2d(5, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], dim=1)
        return self.fc(torch.flatten(F.relu(self.c(y)), 1))


def _mnist_cnn() -> nn.Module:
    return get_architecture("mnist-cnn").build()


CHAIN_MODELS = {"mnist-cnn": (_mnist_cnn, (1, 28, 28)), "bn": (_bn_model, (1, 8, 8))}
DAG_MODELS = {"residual": (Residual, (1, 8, 8)), "concat": (Branches, (1, 8, 8))}
DAG_LAYER = {"residual": "Add", "concat": "Concat"}


def _built(builder, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return builder().eval()


def _assert_same_network(onnx_net: Network, torch_net: Network, x: torch.Tensor) -> None:
    assert _kinds(onnx_net) == _kinds(torch_net)
    assert onnx_net.shapes() == torch_net.shapes()
    assert onnx_net.input_shape == torch_net.input_shape
    assert (onnx_net(x) - torch_net(x)).abs().max() < 1e-5


def _assert_same_spikes(onnx_net: Network, torch_net: Network, shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(5)
    calib = torch.rand(32, *shape, generator=gen)
    x = torch.rand(4, *shape, generator=gen)
    recipe = get_recipe("rate", steps=24)
    ours = convert(onnx_net, recipe, calib).simulate(x).counts
    ref = convert(torch_net, recipe, calib).simulate(x).counts
    assert len(ours) == len(ref)
    assert sum(float(c.sum()) for c in ref) > 0
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("name", sorted(CHAIN_MODELS))
def test_exported_chain_model_matches_capture(name: str, opset: int) -> None:
    builder, shape = CHAIN_MODELS[name]
    model = _built(builder)
    data = _export(model, shape, opset, do_constant_folding=False)
    ops = [n.op_type for n in read_model(data).graph.node]
    assert ops.count("BatchNormalization") == (3 if name == "bn" else 0)
    onnx_net, torch_net = load_onnx(data), capture(model, shape)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1))
    _assert_same_network(onnx_net, torch_net, x)
    with torch.no_grad():
        assert (onnx_net(x) - model(x)).abs().max() < 1e-5
    for ours, ref in zip(onnx_net.layers, torch_net.layers, strict=True):
        if isinstance(ref, (Linear, Conv2d)):
            assert torch.equal(ours.weight, ref.weight) and torch.equal(ours.bias, ref.bias)
    _assert_same_spikes(onnx_net, torch_net, shape)


def test_exporter_folded_batchnorm_matches_model() -> None:
    model = _built(_bn_model)
    data = _export(model, (1, 8, 8), 17)
    assert [n.op_type for n in read_model(data).graph.node].count("BatchNormalization") < 3
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    _assert_same_network(load_onnx(data), capture(model, (1, 8, 8)), x)


def test_load_from_path_equals_load_from_bytes(tmp_path) -> None:
    model = _built(_mnist_cnn)
    data = _export(model, (1, 28, 28), 13)
    path = tmp_path / "cnn.onnx"
    path.write_bytes(data)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(load_onnx(path)(x), load_onnx(data)(x))
    proto = read_model(data)
    assert torch.equal(load_onnx(str(path))(x), load_onnx(proto)(x))
    assert proto.SerializeToString() == data


def test_dynamic_batch_export() -> None:
    model = _built(Residual)
    data = _export(model, (1, 8, 8), 17, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    assert read_model(data).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    net = load_onnx(data)
    assert net.input_shape == (1, 8, 8)
    x = torch.rand(7, 1, 8, 8)
    with torch.no_grad():
        assert (net(x) - model(x)).abs().max() < 1e-5


@pytest.mark.parametrize("name", sorted(DAG_MODELS))
def test_exported_dag_graph_module_matches_model(name: str) -> None:
    builder, shape = DAG_MODELS[name]
    model = _built(builder)
    gm = onnx_to_fx(read_model(_export(model, shape, 17)))
    x = torch.rand(5, *shape)
    with torch.no_grad():
        assert (gm(x) - model(x)).abs().max() < 1e-5


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("name", sorted(DAG_MODELS))
def test_exported_dag_model_matches_capture(name: str, opset: int) -> None:
    builder, shape = DAG_MODELS[name]
    model = _built(builder)
    onnx_net = load_onnx(_export(model, shape, opset))
    torch_net = capture(model, shape)
    x = torch.rand(6, *shape, generator=torch.Generator().manual_seed(1))
    _assert_same_network(onnx_net, torch_net, x)
    assert DAG_LAYER[name] in _kinds(onnx_net)
    assert onnx_net.sources == torch_net.sources
    _assert_same_spikes(onnx_net, torch_net, shape)


# ---- hand-built graphs ---------------------------------------------------------------


def _model(nodes, in_dims, inits=None, opset: int = 17, out_rank: int = 2, inputs=None) -> bytes:
    """Serialized model of ``nodes`` from input "x" to output "y" (of symbolic dims)."""
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)]
    out_dims = [f"d{i}" for i in range(out_rank)]
    graph = helper.make_graph(
        nodes, "g", inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)],
        [numpy_helper.from_array(np.asarray(a), name) for name, a in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_add_becomes_linear(bias_first: bool) -> None:
    w1, c1, w2 = _rand(4, 3), _rand(3, seed=1), _rand(3, 2, seed=2)
    add_inputs = ["c1", "mm"] if bias_first else ["mm", "c1"]
    data = _model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["mm"], name="mm1"),
            helper.make_node("Add", add_inputs, ["h"], name="bias1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu1"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="mm2"),
        ],
        ["N", 4], {"w1": w1, "c1": c1, "w2": w2},
    )
    net = load_onnx(data)
    assert net.input_shape == (4,)
    assert _kinds(net) == ["Linear", "ReLU", "Linear"]
    assert torch.equal(net.layers[0].weight, torch.from_numpy(w1.T))
    assert torch.equal(net.layers[0].bias, torch.from_numpy(c1))
    assert net.layers[2].bias is None
    x = _rand(5, 4, seed=3)
    expected = np.maximum(x @ w1 + c1, 0) @ w2
    np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), expected, rtol=0, atol=1e-5)


def test_add_of_a_constant_elsewhere_is_rejected() -> None:
    data = _model(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("Add", ["r", "c"], ["y"], name="shift"),
        ],
        [1, 4], {"c": _rand(4)},
    )
    with pytest.raises(ValueError, match=r"'shift' \(Add\).*bias of the bias-free MatMul/Gemm"):
        load_onnx(data)


@pytest.mark.parametrize(
    ("target", "static_batch", "via_constant"),
    [([0, -1], "N", False), ([-1, 18], "N", True), ([1, -1], 1, True), ([0, 18], 1, False)],
)
def test_flatten_like_reshape(target: list[int], static_batch, via_constant: bool) -> None:
    w, c = _rand(4, 18), _rand(4, seed=1)
    shape_node = (
        [helper.make_node("Constant", [], ["s"], name="shape",
                          value=numpy_helper.from_array(np.array(target, np.int64)))]
        if via_constant else []
    )
    inits = {"w": w, "c": c} | ({} if via_constant else {"s": np.array(target, np.int64)})
    data = _model(
        [
            *shape_node,
            helper.make_node("Reshape", ["x", "s"], ["f"], name="reshape"),
            helper.make_node("Gemm", ["f", "w", "c"], ["y"], name="fc", transB=1),
        ],
        [static_batch, 2, 3, 3], inits,
    )
    net = load_onnx(data)
    assert _kinds(net) == ["Flatten", "Linear"]
    x = np.random.default_rng(4).random((3, 2, 3, 3), dtype=np.float32)
    expected = x.reshape(3, 18) @ w.T + c
    np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("target", [[2, -1], [0, 2, 9], [-1, 6], [1, -1]])
def test_other_reshapes_are_rejected(target: list[int]) -> None:
    data = _model(
        [helper.make_node("Reshape", ["x", "s"], ["y"], name="odd_reshape")],
        ["N", 2, 3, 3], {"s": np.array(target, np.int64)}, out_rank=len(target),
    )
    with pytest.raises(ValueError, match=r"'odd_reshape' \(Reshape\).*only flatten-like"):
        load_onnx(data)


def test_gemm_alpha_beta_and_untransposed_weight() -> None:
    w, c = _rand(5, 3), _rand(1, 3, seed=1)
    data = _model(
        [helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="fc", alpha=0.5, beta=2.0)],
        [1, 5], {"w": w, "c": c},
    )
    x = _rand(4, 5, seed=2)
    expected = 0.5 * x @ w + 2.0 * c
    np.testing.assert_allclose(load_onnx(data)(torch.from_numpy(x)).numpy(), expected, atol=1e-5)


def test_global_average_pool() -> None:
    w, fc, c = _rand(2, 3, 1, 1), _rand(4, 2, seed=1), _rand(4, seed=2)
    data = _model(
        [
            helper.make_node("Conv", ["x", "w"], ["h"], name="conv"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
            helper.make_node("Flatten", ["g"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fc", "c"], ["y"], name="fc", transB=1),
        ],
        [1, 3, 4, 5], {"w": w, "fc": fc, "c": c},
    )
    net = load_onnx(data)
    pool = next(layer for layer in net.layers if isinstance(layer, AvgPool2d))
    assert pool.kernel_size == (4, 5) and pool.stride == (4, 5)
    x = np.random.default_rng(3).random((2, 3, 4, 5), dtype=np.float32)
    h = np.maximum(np.einsum("oi,nihw->nohw", w[:, :, 0, 0], x), 0)
    expected = h.mean(axis=(2, 3)) @ fc.T + c
    np.testing.assert_allclose(net(torch.from_numpy(x)).numpy(), expected, rtol=0, atol=1e-5)


def test_average_pool_counting_padding() -> None:
    data = _model(
        [helper.make_node("AveragePool", ["x"], ["y"], name="avg", kernel_shape=[2, 2],
                          strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)],
        [1, 1, 2, 2], out_rank=4,
    )
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # every 2x2 window holds one input value and three zero pads
    assert torch.equal(load_onnx(data)(x), x / 4)


def test_same_upper_conv_reduces_to_symmetric_pads() -> None:
    w = _rand(2, 1, 3, 3)
    data = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", auto_pad="SAME_UPPER")],
        [1, 1, 5, 5], {"w": w}, out_rank=4,
    )
    net = load_onnx(data)
    assert net.layers[0].padding == (1, 1)
    assert net.shapes()[0] == (2, 5, 5)


def test_legacy_dropout_mask_output_is_ignored() -> None:
    w = _rand(2, 3)
    data = _model(
        [
            helper.make_node("Dropout", ["x"], ["d", "mask"], name="drop"),
            helper.make_node("Identity", ["w"], ["w_alias"], name="alias"),
            helper.make_node("Gemm", ["d", "w_alias"], ["y"], name="fc", transB=1),
        ],
        [1, 3], {"w": w},
    )
    net = load_onnx(data)
    assert _kinds(net) == ["Linear"]
    assert torch.equal(net.layers[0].weight, torch.from_numpy(w))


def _conv_node(**attrs):
    return helper.make_node("Conv", ["x", "w"], ["y"], name="bad_conv", **attrs)


@pytest.mark.parametrize(
    ("node", "match"),
    [
        (helper.make_node("Sigmoid", ["x"], ["y"], name="act7"),
         r"'act7': op 'Sigmoid' is not supported \(no spiking equivalent; use ReLU\)\. "
         r"Supported: Gemm"),
        (helper.make_node("Clip", ["x"], ["y"], name="relu6"),
         r"'relu6': op 'Clip' is not supported \(ReLU6.*replace it by ReLU"),
        (helper.make_node("Shape", ["x"], ["y"], name="shape_of"),
         r"'shape_of': op 'Shape' is not supported \(a shape computation.*torch.flatten"),
        (_conv_node(pads=[0, 0, 1, 1]), r"'bad_conv' \(Conv\): pads=\[0, 0, 1, 1\] are asymmetric"),
        (_conv_node(auto_pad="SAME_UPPER", strides=[2, 2]), r"'bad_conv'.*not symmetric"),
        (_conv_node(dilations=[2, 2]), r"'bad_conv'.*dilations=\[2, 2\]"),
        (helper.make_node("AveragePool", ["x"], ["y"], name="avg", kernel_shape=[3, 3],
                          pads=[1, 1, 1, 1]),
         r"'avg' \(AveragePool\): count_include_pad=0 with pads \[1, 1\]"),
        (helper.make_node("MaxPool", ["x"], ["y"], name="mp", kernel_shape=[2, 2], ceil_mode=1),
         r"'mp' \(MaxPool\): ceil_mode=1"),
        (helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=2), r"'fl'.*axis=2"),
    ],
)
def test_unsupported_nodes_are_named(node, match: str) -> None:
    inits = {"w": _rand(1, 1, 3, 3)} if node.op_type == "Conv" else {}
    data = _model([node], [1, 1, 6, 6], inits, out_rank=2 if node.op_type == "Flatten" else 4)
    with pytest.raises(ValueError, match=match):
        load_onnx(data)


def test_symbolic_input_needs_input_shape() -> None:
    data = _model([helper.make_node("Relu", ["x"], ["h"]), helper.make_node(
        "MatMul", ["h", "w"], ["y"])], ["N", "F"], {"w": _rand(4, 2)})
    with pytest.raises(ValueError, match=r"no static per-sample shape.*pass input_shape"):
        load_onnx(data)
    assert load_onnx(data, input_shape=(4,)).shapes()[-1] == (2,)
    with pytest.raises(ValueError, match=r"input_shape \(4, 1\) does not match"):
        load_onnx(data, input_shape=(4, 1))


def test_graph_interface_errors() -> None:
    relu = helper.make_node("Relu", ["x"], ["y"])
    two_inputs = _model([relu], None, inputs=[
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("x", "z")
    ])
    with pytest.raises(ValueError, match=r"2 inputs \(x, z\); exactly one"):
        load_onnx(two_inputs)
    two_outputs = helper.make_model(helper.make_graph(
        [relu, helper.make_node("Relu", ["y"], ["z"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3]) for n in ("y", "z")],
    ))
    with pytest.raises(ValueError, match=r"2 outputs \(y, z\); exactly one"):
        load_onnx(two_outputs)
    with pytest.raises(ValueError, match=r"opset 10 is not supported"):
        load_onnx(_model([relu], [1, 3], opset=10))


def test_corrupt_files_raise_value_error(tmp_path) -> None:
    good = _export(_built(_mnist_cnn), (1, 28, 28), 13)
    truncated, garbage = tmp_path / "truncated.onnx", tmp_path / "garbage.onnx"
    truncated.write_bytes(good[: len(good) // 2])
    garbage.write_bytes(b"\xff\xfenot an onnx model")
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match="is not a valid ONNX model"):
            load_onnx(path)
    with pytest.raises(ValueError, match="is not a valid ONNX model"):
        load_onnx(b"")
    with pytest.raises(ValueError, match="does not exist"):
        load_onnx(tmp_path / "missing.onnx")
