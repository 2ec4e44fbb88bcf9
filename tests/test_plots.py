"""Plots leave the caller's matplotlib alone (notebooks keep their inline backend)."""

import os
import subprocess
import sys
import textwrap

from conftest import REPO


def test_plots_keep_the_callers_backend_and_pyplot_state(tmp_path):
    # A subprocess: the backend is process-wide, and pytest's may be anything.
    code = textwrap.dedent(f"""
        import matplotlib
        import matplotlib.pyplot as plt
        from locnet_tf import plots
        path = plots.training_curves({{"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]}}, {str(tmp_path / "c.png")!r})
        figure = plots.confusion_matrix([[3, 1], [0, 4]], ["background", "car"])
        figure.savefig({str(tmp_path / "m.png")!r})
        print(matplotlib.get_backend(), plt.get_fignums())
    """)
    env = dict(os.environ, MPLBACKEND="svg", TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[-2] == "svg []", out.stdout + out.stderr
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "m.png").stat().st_size > 1000
