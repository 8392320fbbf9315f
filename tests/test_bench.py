"""The bench scripts that the README's figures come from still run (tiny sizes, CPU)."""

import subprocess
import sys

from stages import STAGES


def test_gpu_check_runs_every_stage_in_cpu_mode():
    result = subprocess.run([sys.executable, "bench/gpu_check.py", "--tiny"], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout[result.stdout.index("gpu_check on"):]
    for stage in STAGES:
        if stage.name != "report":
            assert f"  {stage.name} " in table, stage.name
