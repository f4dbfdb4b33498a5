"""``python -m aloe.rehearsal DIR``: build a stand-in outside world for the paper preset in DIR.

It writes DIR/hub (every paper teacher under its hub id, tiny, random), DIR/eval (the 11
evaluation datasets as small local copies), DIR/web (url lists of the alignment sets, served on
127.0.0.1 by a background server it starts) and DIR/site.yaml; then

    snakemake --cores 2 --config preset=paper --configfile=DIR/site.yaml results/tables/table2.tex

runs the paper preset's own rules, names and tables end to end. ``--stop`` stops the server.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path


from aloe.io import read_json
from aloe.rehearsal.site import site_config, write_site_file

SERVER_PID = "web/server.pid"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(root: Path, *, config_file: Path, executor: str, port: int | None, seed: int) -> Path:
    from aloe.config import load_config
    from aloe.rehearsal.eval_data import write_eval_datasets
    from aloe.rehearsal.hub import write_hub_cache
    from aloe.rehearsal.serve import start_detached_server
    from aloe.rehearsal.web import WEB_INDEX_FILE, write_url_lists

    paper = load_config(config_file)["paper"]
    root.mkdir(parents=True, exist_ok=True)
    print(f"[rehearsal] hub cache: {len(paper['teachers'])} teachers", flush=True)
    write_hub_cache(root / "hub", {n: t["source"] for n, t in paper["teachers"].items()}, seed=seed)
    print(f"[rehearsal] evaluation datasets: {', '.join(paper['evaluation']['datasets'])}", flush=True)
    datasets = write_eval_datasets(root / "eval", seed=seed, names=tuple(paper["evaluation"]["datasets"]))
    web_index = root / "web" / WEB_INDEX_FILE
    if port is None:
        port = read_json(web_index)["port"] if web_index.is_file() else free_port()
    web = write_url_lists(root / "web", tuple(paper["alignment_sets"]), port=port, seed=seed)
    pid = start_detached_server(web["serve_root"], web["port"], root / SERVER_PID)
    print(f"[rehearsal] alignment url lists served on {web['base_url']} (pid {pid})", flush=True)
    site = site_config(hub_cache=root / "hub", url_lists=web["url_lists"],
                       eval_datasets={n: {"source": d["source"], "path": d["path"]} for n, d in datasets.items()},
                       executor=executor)
    return write_site_file(root / "site.yaml", site)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aloe.rehearsal", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder of the stand-in world (created; reused when rebuilt)")
    parser.add_argument("--stop", action="store_true", help="stop the url-list server of DIR and exit")
    parser.add_argument("--config", type=Path, default=Path("config.yaml"),
                        help="the workflow config (its paper preset)")
    parser.add_argument("--executor", default="local", choices=("local", "inprocess", "auto"),
                        help="launcher.executor of the rehearsal (default: local, submitit subprocesses)")
    parser.add_argument("--port", type=int, default=None, help="port of the url-list server (default: a free one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = args.dir.resolve()
    if args.stop:
        from aloe.rehearsal.serve import stop_server

        print("[rehearsal] server stopped" if stop_server(root / SERVER_PID) else "[rehearsal] no server was running")
        return 0
    site = build(root, config_file=args.config, executor=args.executor, port=args.port, seed=args.seed)
    print(f"[rehearsal] wrote {site}\nnext: snakemake --cores 2 --config preset=paper --configfile={site} "
          f"results/tables/table2.tex\nthen: python -m aloe.rehearsal {args.dir} --stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
