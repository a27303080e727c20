"""Figures of the sigma-delta paper (Fig. 2a, 2b, 3a, 3b, 4) as PNG, each with its JSON data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from spikecast.io.atomic import atomic_write, write_json
from spikecast.schemes.sigma_delta import SigmaDeltaModel
from spikecast.schemes.sigma_delta.encoding import encode_frame


def _figure(ncols: int = 1) -> tuple[Figure, Any]:
    fig = Figure(figsize=(5 * ncols + 1, 4))
    return fig, fig.subplots(1, ncols)


FIGURE_NAMES = ("fig2a_output_vmem", "fig2b_input_raster", "fig3a_accuracy_time",
                "fig3b_accuracy_spikes", "fig4_accuracy_updates")
FIGURE_FILES = tuple(f"{name}.{ext}" for name in FIGURE_NAMES for ext in ("png", "json"))


def _save(fig: Figure, data: dict[str, Any], out: Path, name: str) -> list[Path]:
    fig.tight_layout()
    png = atomic_write(out / f"{name}.png", lambda tmp: fig.savefig(tmp, dpi=120))
    return [png, write_json(out / f"{name}.json", data, indent=1)]


def output_trace(model: SigmaDeltaModel, frame: torch.Tensor) -> dict[str, Any]:
    """Output membrane potentials after each input timestamp of one frame (Fig. 2a).

    The state after the events with t <= T equals the final state of the frame whose
    later pixels are silenced, since events are processed in time order.
    """
    thr = model.recipe.input_threshold
    events = encode_frame(frame, thr)
    times = np.unique(events.time)
    flat = frame.reshape(-1)
    pixel_time = 1.0 - flat.double()
    start = model.final_state(torch.zeros_like(frame))
    v, q = [start.v[-1].tolist()], [start.count[-1].tolist()]
    for t in times:
        masked = torch.where(pixel_time <= t, flat, torch.zeros_like(flat)).reshape(frame.shape)
        state = model.final_state(masked)
        v.append(state.v[-1].tolist())
        q.append(state.count[-1].tolist())
    return {"time": [0.0, *times.tolist()], "v_mem": v, "count": q}


def fig2(model: SigmaDeltaModel, frame: torch.Tensor, label: int, out: Path) -> list[Path]:
    """Fig. 2a (output V_mem over time) and Fig. 2b (input spike raster) for one frame."""
    trace = output_trace(model, frame)
    fig, ax = _figure()
    v = np.array(trace["v_mem"])
    for k in range(v.shape[1]):
        ax.step(trace["time"], v[:, k], where="post", lw=2.5 if k == label else 1, label=str(k))
    ax.set_xlabel("time (TU)")
    ax.set_ylabel("output V_mem")
    ax.set_title(f"Fig. 2a: output neurons, first test frame (label {label})")
    ax.legend(ncol=5, fontsize=7)
    paths = _save(fig, trace | {"label": label}, out, "fig2a_output_vmem")
    events = encode_frame(frame, model.recipe.input_threshold)
    fig, ax = _figure()
    ax.scatter(events.time, events.index, s=4)
    ax.set_xlabel("time (TU)")
    ax.set_ylabel("pixel index")
    ax.set_title("Fig. 2b: input spikes (intensity-to-delay)")
    data = {"time": events.time.tolist(), "pixel": events.index.tolist()}
    return paths + _save(fig, data, out, "fig2b_input_raster")


def fig3_fig4(details: dict[str, dict], ann_accuracy: float, ann_macs: dict[str, int],
              out: Path) -> list[Path]:
    """Fig. 3a accuracy vs time, Fig. 3b vs spikes per neuron (plus the trade-off over
    theta), Fig. 4 vs synaptic updates with the ANN's MAC counts marked."""
    paths = []
    fig, ax = _figure()
    for name, d in details.items():
        ax.plot(d["curve"]["x"], np.array(d["curve"]["accuracy"]) * 100, label=name)
    ax.axhline(ann_accuracy * 100, color="k", ls="--", lw=1, label="ANN")
    ax.set_xlabel("time (TU)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(80, 100)
    ax.legend(fontsize=7)
    ax.set_title("Fig. 3a: accuracy vs time")
    paths += _save(fig, {k: d["curve"] for k, d in details.items()}, out, "fig3a_accuracy_time")
    fig, (ax, ax2) = _figure(2)
    for name, d in details.items():
        c = d["accuracy_vs_spikes"]
        ax.plot(c["spikes_per_neuron"], np.array(c["accuracy"]) * 100, label=name)
        ax2.scatter(d["spikes_per_neuron"], d["accuracy"] * 100)
        ax2.annotate(name, (d["spikes_per_neuron"], d["accuracy"] * 100), fontsize=6)
    for a in (ax, ax2):
        a.axhline(ann_accuracy * 100, color="k", ls="--", lw=1)
        a.set_xlabel("spikes per neuron per frame")
        a.set_ylabel("accuracy (%)")
    ax.set_ylim(80, 100)
    ax.legend(fontsize=7)
    ax.set_title("Fig. 3b: accuracy vs cumulative spikes")
    ax2.set_title("trade-off over theta (end of frame)")
    data = {k: d["accuracy_vs_spikes"] | {"final_spikes_per_neuron": d["spikes_per_neuron"],
                                           "final_accuracy": d["accuracy"]}
            for k, d in details.items()}
    paths += _save(fig, data, out, "fig3b_accuracy_spikes")
    fig, ax = _figure()
    for name, d in details.items():
        c = d["accuracy_vs_updates"]
        ax.plot(c["synaptic_updates"], np.array(c["accuracy"]) * 100, label=name)
    for label, macs in ann_macs.items():
        ax.axvline(macs, ls=":", lw=1, label=f"ANN MACs ({label}) {macs:,}")
    ax.axhline(ann_accuracy * 100, color="k", ls="--", lw=1)
    ax.set_xlabel("synaptic updates per frame (cumulative)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(80, 100)
    ax.legend(fontsize=7)
    ax.set_title("Fig. 4: accuracy vs synaptic updates")
    data = {"ann_macs": ann_macs} | {k: d["accuracy_vs_updates"] for k, d in details.items()}
    return paths + _save(fig, data, out, "fig4_accuracy_updates")
