"""Run the pipeline's command line and SIGKILL the process right after the N-th call
of one function: a crash at a chosen moment, reproducible, with nothing cleaned up.

    python tests/kill_at.py MODULE:ATTR[.ATTR] N run_pipeline.py-arguments...

For instance `torch.optim:SGD.step 5` dies after the fifth optimisation step.
"""

import importlib
import os
import signal
import sys

sys.path.insert(0, os.getcwd())


def arm(target: str, n: int) -> None:
    module_name, _, path = target.partition(":")
    *owners, name = path.split(".")
    owner = importlib.import_module(module_name)
    for part in owners:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0

    def dies_after_n_calls(*args, **kwargs):
        nonlocal calls
        result = original(*args, **kwargs)
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, dies_after_n_calls)


if __name__ == "__main__":
    arm(sys.argv[1], int(sys.argv[2]))
    import run_pipeline

    sys.exit(run_pipeline.main(sys.argv[3:]))
