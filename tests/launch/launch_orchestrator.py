"""Stand-in for a Snakemake rule process: runs launch_many on the local executor so a test can
signal or kill it as a whole process. Usage: python launch_orchestrator.py '<json>'."""

import json
import signal
import sys

import launch_jobfns

from aloe.launch import launch_many

if __name__ == "__main__":
    # A shell that starts a command in the background (`cmd &`) makes it ignore SIGINT, and the
    # job processes would inherit that; a rule process under Snakemake gets SIGINT as usual.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args = json.loads(sys.argv[1])
    launch_many(
        getattr(launch_jobfns, args["fn"]),
        args["kwargs_list"],
        outputs=args["outputs"],
        resources=args.get("resources", {}),
        log_dir=args["log_dir"],
        executor="local",
        detach_on_interrupt=args["detach"],
        poll_s=0.1,
    )
