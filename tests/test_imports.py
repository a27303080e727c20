"""``import spikecast`` and the command line's start stay light: numba (the kernels) and
matplotlib (figures) load only when a simulator or a figure needs them."""

import subprocess
import sys

import pytest

PROBE = "import sys; {stmt}; print(sorted(m for m in {heavy!r} if m in sys.modules))"


@pytest.mark.parametrize(
    ("stmt", "heavy"),
    [
        ("import spikecast", ("numba", "matplotlib", "torch")),
        ("import spikecast.cli", ("numba", "matplotlib")),
        ("import spikecast.schemes.sigma_delta.neuron", ("numba",)),
    ],
)
def test_light_imports(stmt: str, heavy: tuple[str, ...]) -> None:
    code = PROBE.format(stmt=stmt, heavy=heavy)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout


def test_lazy_attributes_resolve_and_refuse_unknown_names() -> None:
    import spikecast

    assert spikecast.convert.__module__ == "spikecast.api"
    assert "rate" in spikecast.scheme_names()
    with pytest.raises(AttributeError, match="has no attribute 'bogus'"):
        _ = spikecast.bogus
