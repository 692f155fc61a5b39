"""Hub utilities: list a run's checkpoints, pull one, merge an adapter, push a folder.

    python -m hub list me/policy-qa-run
    python -m hub pull me/policy-qa-run --revision 40 --out ckpt-40          # step 40, or a commit sha
    python -m hub pull me/policy-qa-run --revision best --out best           # the best answer score
    python -m hub merge --base demo --adapter me/policy-qa-run@3f2a1c --out merged --verify
    python -m hub merge --base NousResearch/Llama-2-7b-chat-hf --adapter ckpt-40 --out merged \
        --dtype bfloat16 --push me/policy-qa-merged
    python -m hub push merged me/policy-qa-merged
    python -m hub deploy me/domain-qa --var QA_BASE_MODEL=demo --var QA_ADAPTER=me/policy-qa-run@3f2a1c \
        --secret HF_TOKEN --hardware cpu-basic [--dry-run]
    python -m hub rehearse me/domain-qa                                       # build and start it here

The endpoint and token come from --hub-endpoint / --hub-token, else HF_ENDPOINT / HF_TOKEN.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from qa_core.cli import add_command, new_parser, run
from qa_core.config import Settings, setting_option
from qa_core.hub.checkpoints import (
    CHECKPOINT_FILE,
    SCORE_KEYS,
    list_checkpoints,
    pin_checkpoint,
    pull,
    push_checkpoint,
    read_checkpoint_record,
    score_label,
)
from qa_core.hub.client import push_folder, require_reachable
from qa_core.hub.publish import DEFAULT_TOLERANCE, MERGE_INFO_FILE, model_card
from qa_core.hub.spaces import HARDWARE, deploy, plan_space

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where app.py lives in a checkout
COLUMN = {"loss": "train loss", "eval_loss": "eval loss"}  # `list`'s headers for what a record calls them


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    require_reachable(args.repo, settings)
    checkpoints = list_checkpoints(args.repo, settings)
    if args.json:
        found = [{"commit": c.commit, "date": c.date.isoformat(), **c.info} for c in checkpoints]
        for item, checkpoint in zip(found, checkpoints, strict=True):
            if checkpoint.base_scores:
                item["base_scores"] = checkpoint.base_scores
        print(json.dumps(found))
        return 0
    keys = [key for key in ("loss", "eval_loss", *SCORE_KEYS) if any(key in c.info for c in checkpoints)]
    labels = [f"{COLUMN.get(key) or score_label(key):>15}" for key in keys]
    print("  ".join([f"{'commit':<12}", f"{'step':>6}", f"{'date':<16}", *labels]))
    for c in checkpoints:
        print("  ".join([c.commit[:12], f"{c.step:>6}", f"{c.date:%Y-%m-%d %H:%M}", *_cells(c.info, keys)]))
    base = next((c.base_scores for c in checkpoints if c.base_scores), None)
    if base:  # what the checkpoints' answer scores compare with
        print("  ".join([f"{'base model':<12}", f"{0:>6}", f"{'before training':<16}", *_cells(base, keys)]))
    print(f"{args.repo}: {len(checkpoints)} checkpoint(s); --json for every recorded field", file=sys.stderr)
    return 0


def _cells(info: dict, keys: list[str]) -> list[str]:
    return [f"{info[key]:>15.4g}" if isinstance(info.get(key), (int, float)) else f"{'':>15}" for key in keys]


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    require_reachable(args.repo, settings)
    commit = pull(args.repo, args.revision, args.out, settings)
    step = read_checkpoint_record(Path(args.out)).get("step")
    print(f"{args.repo}@{commit}" + (f" (step {step})" if step is not None else "") + f" -> {args.out}")
    return 0


def _push(folder: Path, repo: str, settings: Settings) -> str:
    """A merged folder is pushed with its model card; a training checkpoint (it holds its record) as
    a checkpoint commit, so `list`, `pull` and `--resume-from-hub` see it; anything else as it is."""
    info_file = folder / MERGE_INFO_FILE
    if info_file.is_file():
        card = model_card(repo, json.loads(info_file.read_text()))
        return push_folder(folder, repo, settings, f"Upload {folder.name}", extra_files={"README.md": card})
    record = read_checkpoint_record(folder)
    if isinstance(record.get("step"), int) and (folder / CHECKPOINT_FILE).is_file():
        return push_checkpoint(folder, repo, record, settings)
    return push_folder(folder, repo, settings, f"Upload {folder.name}")


def cmd_merge(args: argparse.Namespace, settings: Settings) -> int:
    from hub.merge import merge_adapter  # torch and transformers: only for the command that needs them

    result = merge_adapter(args.base, args.adapter, args.out, settings, args.dtype, verify=args.verify)
    print(f"merged {result.base} + {result.adapter} -> {result.out}", file=sys.stderr)
    if result.max_abs_diff is not None:  # verified first: a merge that fails the check is never pushed
        tolerance = args.tolerance if args.tolerance is not None else DEFAULT_TOLERANCE[args.dtype]
        print(f"max_abs_diff={result.max_abs_diff:.6g}")
        if result.max_abs_diff > tolerance:
            not_pushed = f"; not pushed to {args.push}" if args.push else ""
            print(
                f"error: merged logits differ from the adapter's by more than {tolerance}{not_pushed}", file=sys.stderr
            )
            return 1
    if args.push:
        commit = _push(Path(args.out), args.push, settings)
        print(f"pushed {args.out} -> {args.push}@{commit}", file=sys.stderr)
    return 0


def cmd_push(args: argparse.Namespace, settings: Settings) -> int:
    require_reachable(args.repo, settings)
    commit = _push(Path(args.folder), args.repo, settings)
    print(f"{args.folder} -> {args.repo}@{commit}")
    return 0


def cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    plan = plan_space(
        Path(args.app_dir),
        args.space,
        settings,
        args.var,
        args.secret,
        args.hardware,
        args.private or None,
        args.env_file,
    )
    if args.dry_run:
        print("\n".join(plan.describe()))
        print("dry run: nothing was changed on the Hub", file=sys.stderr)
        return 0
    adapter = plan.variables.get("QA_ADAPTER")
    pinned = pin_checkpoint(adapter, settings) if adapter else None
    if pinned != adapter:  # a step or `best`: the Space serves that commit, whatever the run pushes next
        plan.variables["QA_ADAPTER"] = pinned
        print(f"QA_ADAPTER={adapter} pinned to {pinned}", file=sys.stderr)
    collection = plan.variables.get("QA_COLLECTION_REPO")
    if collection:  # checked to be a collection, and served at the commit it is at now
        from qa_core.rag.published import pin_collection

        plan.variables["QA_COLLECTION_REPO"] = pin_collection(collection, settings)
        print(f"QA_COLLECTION_REPO={collection} pinned to {plan.variables['QA_COLLECTION_REPO']}", file=sys.stderr)
    deployment = deploy(plan, settings)
    print(f"deployed {len(plan.files)} files to {deployment.space_id}@{deployment.commit}", file=sys.stderr)
    print(deployment.url)
    print(f"commit {deployment.commit}")
    return 0


def cmd_rehearse(args: argparse.Namespace, settings: Settings) -> int:
    from hub.rehearse import rehearse  # gradio_client and subprocesses: only for this command

    done = rehearse(args.space, settings, args.workdir, args.revision, args.env_file, args.max_new_tokens)
    if args.json:
        print(json.dumps(dataclasses.asdict(done)))
        return 0
    installed = f"installed in {done.install_s:.0f} s" if done.install_s else "environment reused"
    print(f"{done.space_id}@{done.commit}: {installed}, answered {done.start_s:.1f} s after start", file=sys.stderr)
    for tab, answer in done.answers.items():
        print(f"{tab}: {' '.join(str(answer).split())}")
    print(f"public defaults: {'; '.join(done.checks)}")
    return 0


def shared_options(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--hub-endpoint", dest="hf_endpoint", default=default(None), **setting_option("hf_endpoint"))
    parser.add_argument(
        "--hub-token", dest="hf_token", default=default(None), help="Hub token (default: HF_TOKEN); prefer the variable"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m hub", __doc__, shared_options)
    commands = parser.add_subparsers(dest="command", required=True)

    listing = add_command(commands, "list", "the checkpoints of a run: commit, step, date, metrics", shared_options)
    listing.add_argument("repo")
    listing.add_argument("--json", action="store_true", help="print one JSON list")
    listing.set_defaults(run=cmd_list)

    pulling = add_command(commands, "pull", "download one checkpoint exactly, by commit sha or step", shared_options)
    pulling.add_argument("repo")
    pulling.add_argument(
        "--revision",
        default="main",
        help="a step (40, step-40), best or best:METRIC (the best answer score: exact_figure unless the run "
        "chose another), a commit sha, a branch or tag (default: the latest)",
    )
    pulling.add_argument("--out", required=True, help="folder to write the checkpoint's files to")
    pulling.set_defaults(run=cmd_pull)

    merging = add_command(commands, "merge", "merge a LoRA adapter (and trained head) into its base", shared_options)
    merging.add_argument("--base", required=True, help="base model: Hub id[@rev], folder, or 'demo'")
    merging.add_argument("--adapter", required=True, help="adapter: Hub repo[@rev or @step sha] or folder")
    merging.add_argument("--out", required=True, help="folder for the merged model")
    merging.add_argument("--dtype", default="float32", choices=list(DEFAULT_TOLERANCE), help="merge precision")
    merging.add_argument(
        "--verify", action="store_true", help="compare merged vs adapter logits; last line max_abs_diff="
    )
    merging.add_argument(
        "--tolerance",
        type=float,
        help="largest accepted difference (default by dtype: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_TOLERANCE.items())
        + ")",
    )
    merging.add_argument("--push", metavar="REPO", help="also push the merged folder, with a model card")
    merging.set_defaults(run=cmd_merge)

    pushing = add_command(
        commands, "push", "push a folder as one commit (a merged folder gets a model card)", shared_options
    )
    pushing.add_argument("folder")
    pushing.add_argument("repo")
    pushing.set_defaults(run=cmd_push)

    deploying = add_command(
        commands, "deploy", "create or update a Gradio Space with the files the app runs, in one commit", shared_options
    )
    deploying.add_argument("space", help="the Space's id, OWNER/NAME")
    deploying.add_argument(
        "--var", action="append", default=[], metavar="KEY=VALUE", help="a Space variable (repeatable)"
    )
    deploying.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME",
        help="a Space secret whose value is read from the environment or .env (repeatable)",
    )
    deploying.add_argument("--hardware", metavar="NAME", help=f"hardware to request: {', '.join(HARDWARE)}")
    deploying.add_argument("--private", action="store_true", help="create the Space private")
    deploying.add_argument("--dry-run", action="store_true", help="list the files and settings; change nothing")
    deploying.add_argument(
        "--app-dir", default=str(PROJECT_ROOT), help="the folder holding app.py (default: this checkout)"
    )
    deploying.set_defaults(run=cmd_deploy)

    rehearsing = add_command(
        commands, "rehearse", "build and start a deployed Space here and ask each tab a question", shared_options
    )
    rehearsing.add_argument("space", help="the Space's id, OWNER/NAME")
    rehearsing.add_argument("--revision", help="the commit to rehearse (default: the Space's head)")
    rehearsing.add_argument(
        "--workdir", type=Path, help="folder for the files, environment and log (kept; reused while requirements match)"
    )
    rehearsing.add_argument("--max-new-tokens", type=int, default=16, help="answer length per tab (default 16)")
    rehearsing.add_argument("--json", action="store_true", help="print one JSON object: commit, times, answers")
    rehearsing.set_defaults(run=cmd_rehearse)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the hub command line; returns the exit status (2 for bad input, 1 for a failed verify)."""
    return run(build_parser(), argv, overrides=("hf_endpoint", "hf_token"))
