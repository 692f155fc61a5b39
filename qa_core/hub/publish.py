"""Publishing: check push options and write access before training, and write model cards.

Cards name local files and folders by their name only, never by their path on this machine; the
pushes themselves are `qa_core.hub.client.push_folder` (one commit, never a token).

    from qa_core.hub.publish import model_card
    print(model_card("me/merged", {"base": "smollm2", "adapter": "me/run", "dtype": "float32"}))
"""

from __future__ import annotations

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from qa_core.config import Settings
from qa_core.errors import HubError
from qa_core.hub.checkpoints import SCORE_KEYS, score_label
from qa_core.hub.client import api, call
from qa_core.hub.refs import is_hub_dataset, public_name

# What `python -m hub merge` writes beside a merged model, and the card of its push is made from;
# with the largest logit difference its --verify accepts by default, per merge dtype.
MERGE_INFO_FILE = "merge_info.json"
DEFAULT_TOLERANCE = {"float32": 1e-3, "float16": 5e-2, "bfloat16": 1e-1}


def check_push_options(repo_id: str | None, settings: Settings) -> None:
    """Fail at once, without a request, when `--push-to-hub` lacks a repo or a token.

    Raises:
        HubError: no `--hub-repo`, or no token.
    """
    if not repo_id:
        raise HubError("--push-to-hub needs --hub-repo USER/NAME")
    if not settings.hf_token:
        raise HubError("--push-to-hub needs a token: set HF_TOKEN or pass --hub-token")


def check_write_access(repo_id: str, settings: Settings, repo_type: str = "model") -> None:
    """Fail early (before training) when the token cannot write to `repo_id` (creating it if needed)."""
    identity = call(lambda: api(settings).whoami(), settings, repo_id)
    if identity.get("auth", {}).get("accessToken", {}).get("role") == "read":
        raise HubError(f"{repo_id}: the token is read-only; pushing needs a write token")
    call(lambda: api(settings).create_repo(repo_id, exist_ok=True, repo_type=repo_type), settings, repo_id)


def _card(data: ModelCardData, title: str, intro: str, facts: dict, metrics: dict, more: list[str] = ()) -> str:
    """A model card: metadata the Hub indexes, an intro, a facts table, `more` lines, a metrics table."""
    lines = [f"# {title}", "", intro, "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in facts.items() if value not in (None, "")]
    lines += more
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.6g} |" for key, value in sorted(numbers.items())]
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n"))


def _score_table(record: dict) -> list[str]:
    """The card's section of answer scores: every checkpoint so far against the base, and how to
    ask the same questions again ([] for a run that scored none)."""
    history = record.get("answer_scores") or []
    keys = [key for key in SCORE_KEYS if any(key in entry for entry in history)]
    if not keys:
        return []
    lines = ["", "## Answer scores", ""]
    if record.get("scored_with"):
        lines += [f"Held-out questions answered at every checkpoint (`{record['scored_with']}` asks them again):", ""]
    if record.get("score_curve"):
        lines += [f"![answer scores by step]({record['score_curve']})", ""]
    lines += ["| step | " + " | ".join(score_label(key) for key in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for entry in history:
        step = "base" if entry["step"] == 0 else str(entry["step"])
        cells = [f"{entry[key]:.3f}" if key in entry else "" for key in keys]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines


def _eval_results(record: dict) -> list[EvalResult] | None:
    """The checkpoint's own answer scores as the Hub's `model-index` (shown on the model page)."""
    scores = [key for key in SCORE_KEYS if isinstance(record.get(key), (int, float))]
    if not scores:
        return None
    dataset = public_name(record.get("dataset") or "held-out data")
    return [
        EvalResult(
            task_type="question-answering",
            dataset_type=dataset,
            dataset_name=f"{dataset}, held-out questions",
            dataset_split="test",
            metric_type=key.removeprefix("eval_"),
            metric_name=score_label(key),
            metric_value=record[key],
        )
        for key in scores
    ]


def _card_data(base: str, library: str, tags: list[str], dataset: str | None, **extra: object) -> ModelCardData:
    hub_dataset = dataset and is_hub_dataset(dataset)  # records name a local file by its name alone
    return ModelCardData(
        base_model=public_name(base),
        library_name=library,
        tags=["qa-toolkit", *tags],
        datasets=[dataset] if hub_dataset else None,
        **extra,
    )


def _code(text: str | None, commit: str | None = None) -> str | None:
    return f"`{text}`" + (f" at commit `{commit}`" if commit else "") if text else None


def model_card(repo_id: str, provenance: dict) -> str:
    """The README.md of a merged model: base and adapter (with commits), data, merge check, metrics."""
    checkpoint = provenance.get("checkpoint") or {}
    dataset = checkpoint.get("dataset")
    diff = provenance.get("max_abs_diff")
    return _card(
        _card_data(provenance["base"], "transformers", ["lora", "merged"], dataset),
        repo_id,
        f"A LoRA adapter merged into its base model with qa-toolkit (`python -m hub merge`), in {provenance['dtype']}.",
        {
            "base model": _code(public_name(provenance["base"]), provenance.get("base_commit")),
            "adapter": _code(public_name(provenance["adapter"]), provenance.get("adapter_commit")),
            "training data": _code(public_name(dataset) if dataset else None),
            "merge check: max abs logit difference vs adapter": f"{diff:.3g}" if diff is not None else None,
        },
        checkpoint,
    )


def adapter_card(repo_id: str, record: dict) -> str:
    """The README.md of a checkpoint of a run's adapter repo, made from its checkpoint record alone:
    how it was trained (including the prompt style it must be asked in), its metrics, how to use it."""
    base = record.get("base_model", "")
    usage = f'python -m qa_core ask "Your question" --model {base} --adapter {repo_id}'
    style = record.get("prompt_style")
    task = record.get("task", "sft")
    what = {"pretrain": "continued pretraining on raw text", "dpo": "question answering, preference-tuned (DPO)"}
    what = what.get(task, "question answering")
    intro = f"LoRA adapter trained with qa-toolkit (`train_job/run.py`) for {what}; one commit per checkpoint."
    intro += f"\n\n```bash\n{usage}\n```"
    if record.get("loss_curve"):
        intro += f"\n\n![training and eval loss]({record['loss_curve']})"
    lora = record.get("lora") or {}
    results = _eval_results(record)
    return _card(
        _card_data(
            base,
            "peft",
            ["lora", "question-answering"],
            record.get("dataset"),
            prompt_style=style,
            model_name=repo_id if results else None,  # the Hub's model-index needs the model's name
            eval_results=results,
        ),
        repo_id,
        intro,
        {
            "base model": _code(base, record.get("base_commit")),
            "task": task,
            "started from adapter": _code(record.get("init_adapter")),
            "training data": _code(record.get("dataset")),
            "prompt style": _code(style),
            "quantization": _code(record.get("quantization")),
            "LoRA": f"r {lora['r']}, alpha {lora['alpha']}, dropout {lora['dropout']}, "
            f"modules {', '.join(lora['target_modules'])}"
            if lora
            else None,
            "trained head": ", ".join(lora.get("modules_to_save") or []) or "no",
            "unanswerable rows": _unanswerable(record.get("unanswerable")),
            "preference pairs": _pairs(record.get("preference")),
            "steps": record.get("step"),
        },
        record,
        _score_table(record),
    )


def _unanswerable(made: dict | None) -> str | None:
    return f"{made['share']:.0%} of the rows, answered “{made['answer']}”" if made else None


def _pairs(preference: dict | None) -> str | None:
    if not preference:
        return None
    pairs = preference["pairs"]
    if "loaded_from" in pairs:
        return f"{pairs['pairs']} made earlier, from {pairs['loaded_from']}, beta {preference['beta']}"
    return (
        f"{pairs.get('pairs', 0)} from the adapter's own answers to {pairs['questions']} questions "
        f"({pairs.get('unanswerable', 0)} unanswerable; {pairs.get('chosen_own', 0)} prefer an answer of its own "
        f"to the reference), beta {preference['beta']}"
    )
