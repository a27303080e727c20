"""Why a residual SNN can sit below its own Q-ANN (issue 11), as exact, tested statements.

1. No routing error: every population's final potential is the exact pre-activation of its
   sources' final quantized values (the invariant of test_sigma_delta_dag), so the SNN and
   the Q-ANN see the same linear algebra.
2. They differ only in where each neuron rests. The paper's hysteresis neuron (h = 1) rests
   anywhere with |f(v) - V_q| < theta: on floor(f(v) / theta) after its potential rose, on
   the ceiling after it fell; the paper's Q-ANN always floors. In a residual block the skip
   is one hop shorter than the convolution branch, so each spike reaches the Add through
   the skip first and the branch's (often opposite) correction arrives after it: Add
   neurons overshoot and come down, resting above the Q-ANN's value (golden test below).
   Those errors are of both signs and path dependent, the Q-ANN's are all -frac; which
   one a network tolerates better is the network's business, so the Q-ANN is no bound.
3. With h = 0 (nearest level) the rest state is path independent and the SNN equals the
   Q-ANN of the same quantizer exactly, population by population, on residual blocks with
   BN (test_sigma_delta_levels) and in accuracy (below).
"""

import numpy as np
import torch
from dag_models import ResidualBlock, trained_like

from spikecast.frontends.torch_fx import capture
from spikecast.ir.graph import INPUT, Add, Linear, Network, ReLU
from spikecast.schemes.sigma_delta import SigmaDeltaRecipe
from spikecast.schemes.sigma_delta.program import build_program
from spikecast.schemes.sigma_delta.qann import qann_forward, qann_predict
from spikecast.schemes.sigma_delta.sim_event import EventSimulator


def skip_first():
    """h = relu(x); out = relu(x - 0.5 h): the skip carries +1, the branch -0.5 later."""
    return Network(
        (Linear(torch.tensor([[1.0]])), ReLU(), Linear(torch.tensor([[-0.5]])), Add((1.0, 1.0)),
         ReLU()),
        ("h", "h.relu", "branch", "out", "out.relu"), (1,),
        ((INPUT,), (0,), (1,), (2, INPUT), (3,)),
    )


def test_skip_overshoot_leaves_the_hysteresis_neuron_on_the_ceiling():
    # theta 1, pixel 1.0 at t = 0 (one spike). The input spike updates h (v 1 -> +1) and,
    # through the skip, out (v 1 -> +1); h's spike then brings out to v = .5: d = -.5 > -1,
    # so out rests at level 1 although floor(.5) = 0, the Q-ANN's value.
    net, frame = skip_first(), torch.tensor([[1.0]])
    prog = build_program(net, (1.0, 1.0))
    state = EventSimulator(prog, "exact", hysteresis=1.0).final_state(frame[0])
    assert state.v[2].tolist() == [0.5] and state.count[2].tolist() == [1]
    assert qann_forward(net, frame, (1.0, 1.0), hysteresis=1.0)[-1].tolist() == [[0.0]]
    # h = 0: the level nearest .5 (ties go up) is 1 whatever the order: SNN == Q-ANN
    state = EventSimulator(prog, "exact", hysteresis=0.0).final_state(frame[0])
    assert state.count[2].tolist() == [1]
    assert qann_forward(net, frame, (1.0, 1.0), hysteresis=0.0)[-1].tolist() == [[1.0]]


def test_nearest_level_snn_accuracy_equals_its_qann_on_a_residual_block():
    torch.manual_seed(4)
    net = capture(trained_like(ResidualBlock()), (1, 6, 6))
    x = torch.rand(60, 1, 6, 6)
    for theta in (0.05, 0.2, 0.5):
        recipe = SigmaDeltaRecipe(theta=theta, hysteresis=0.0, input_levels=4)
        snn = recipe.build(net, recipe.calibrate(net, None))
        rec = snn.simulate(x)
        qann = qann_predict(net, x, snn.thetas, recipe.input_threshold, hysteresis=0.0,
                            input_levels=4)
        np.testing.assert_array_equal(rec.final_pred, qann.numpy())
