"""Preference pairs for DPO, built from QA rows and the adapter's own answers, judged against the
reference and by the figure check.

    python train_job/run.py --config configs/smollm2-cpu-dpo.yaml --data facts.csv --adapter runs/smollm2-cpu/final
    python train_job/run.py --config configs/smollm2-cpu-dpo.yaml --data facts.csv --adapter runs/smollm2-cpu/final \
        --save_pairs pairs.jsonl --push_pairs your-name/facts-pairs   # the pairs, TRL's preference format

Every question (the data's rows and the unanswerable ones made from them, `qa_core.unanswerable`)
is answered `samples` times by the model being tuned, sampled as a user would see it, and each
answer is judged (`is_right`):
- answerable: right when it states the reference's figures (or, without figures, the reference
  word for word), the figure check gives each of its figures a ✓ from the row's context, and it
  does not say the context is silent;
- unanswerable: right when it says the context does not state it and states no figure.
Every question gives one pair: chosen, a right answer of the model's own (the reference where none
is); rejected, a wrong one of its own, or, when it answered right every time, a wrong figure it
could have stated (`foil`): another figure of its context, of the reference's kind where there is
one, or, where the context cannot answer, the answer it no longer states. For a `decline_share` of
the answerable questions it answered right, the rejected answer is "not stated" instead. So the
pairs are as balanced as the questions, and teach both ways: measured on the walk-through's model,
"not stated" rejected wherever the context answers taught it never to say it (0.03 of unanswerable
questions, from 0.82); never rejected but for its own mistakes, more DPO steps taught it to decline
answerable questions too (0.30 of them after 48 steps); half and half kept those at 0.03 while
"not stated" rose to 0.73 where the context cannot answer. A question whose reference itself is
not judged right (the figure check finds no ✓ for it in the context) is left out.

`PreferenceTrainer` trains on the pairs with TRL's DPO, continuing the adapter; its reference is a
frozen copy of the adapter as it started (TRL's way for a PEFT model: no second model in memory),
which is never saved or pushed.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from pathlib import Path

from datasets import Dataset, load_dataset
from huggingface_hub import DatasetCardData
from transformers import set_seed
from trl import DPOTrainer

from qa_core.config import Settings
from qa_core.errors import QAError
from qa_core.generation import GenerationSettings
from qa_core.grounding import check_figures
from qa_core.hub.client import api, call, push_folder
from qa_core.hub.refs import ModelRef, is_hub_dataset
from qa_core.metrics import contains_answer, exact_figure, says_not_stated
from qa_core.models import LoadedModel
from qa_core.prompts import build_prompt
from qa_core.quantities import quantities
from qa_core.unanswerable import NOT_STATED_ANSWER, WITHHELD

PAIR_COLUMNS = ("prompt", "chosen", "rejected")  # TRL's preference format
PAIRS_FILE = "pairs.jsonl"  # of a pushed pairs dataset


def completion(prompt: str, answer: str) -> str:
    """`answer` as it follows `prompt` in training: after a space unless the prompt ends with one."""
    return answer if prompt[-1:].isspace() else " " + answer


def is_right(answer: str, question: str, reference: str, context: str) -> bool:
    """Whether `answer` is one to prefer (see the module's docstring)."""
    if says_not_stated(reference):
        return says_not_stated(answer) and not quantities(answer)
    if says_not_stated(answer):
        return False
    exact = exact_figure(answer, reference, question)
    if exact is None:
        return contains_answer(answer, reference)
    return exact and not check_figures(answer, [context], question).flagged


def wrong_figure(row: dict, rng: random.Random) -> str | None:
    """A figure of `row`'s context that is not its answer, of the answer's kind where the context
    holds one (the year before's revenue where this year's is asked); None when it holds none."""
    stated = quantities(row["answer"])
    others = [q for q in quantities(row["context"]) if not any(q.figure.same_as(s.figure) for s in stated)]
    alike = [q for q in others if stated and q.kind == stated[0].kind]
    return rng.choice(alike or others).text if others else None


def build_pairs(
    loaded: LoadedModel,
    rows: Dataset,
    style: str,
    samples: int = 2,
    temperature: float = 0.7,
    max_new_tokens: int = 48,
    seed: int = 42,
    show_progress: bool = True,
    decline_share: float = 0.0,
    not_stated: str = NOT_STATED_ANSWER,
) -> tuple[Dataset, dict[str, int]]:
    """Preference pairs from `rows` (question, context, answer) and the model's own sampled answers.

    Returns:
        (a Dataset of prompt / chosen / rejected strings, the prompt built in `style` as at
        inference time; counts: `questions`, `answers`, `right` answers, `unconfirmed`
        questions, whose reference the check does not confirm (left out), `pairs`, and of the
        pairs `unanswerable`, `chosen_own` and `rejected_own`, those whose chosen or rejected
        answer is the model's own, and `declines_rejected`, answerable questions the model
        answered right whose pair rejects `not_stated` (a `decline_share` of them) rather than a
        wrong figure).
    """
    prompts = [build_prompt(style, row["question"], row["context"] or None, loaded.tokenizer) for row in rows]
    set_seed(seed)
    generation = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature)
    answers = loaded.backend.generate_many(prompts * samples, generation, show_progress=show_progress)
    rng = random.Random(seed)
    pairs = []
    kept = ("right", "unconfirmed", "pairs", "unanswerable", "chosen_own", "rejected_own", "declines_rejected")
    counts = Counter(dict.fromkeys(kept, 0))
    counts.update(questions=len(rows), answers=len(answers))
    for n, (row, prompt) in enumerate(zip(rows, prompts, strict=True)):
        if not is_right(row["answer"], row["question"], row["answer"], row["context"]):
            counts["unconfirmed"] += 1  # the check cannot confirm the reference itself: no judgement to trust
            continue
        own = list(dict.fromkeys(a.strip() for a in answers[n :: len(prompts)]))
        right = [a for a in own if is_right(a, row["question"], row["answer"], row["context"])]
        wrong = [a for a in own if a not in right]
        unanswerable = says_not_stated(row["answer"])
        foil = row.get(WITHHELD) if unanswerable else wrong_figure(row, rng)
        if decline_share and not (unanswerable or wrong) and rng.random() < decline_share:
            foil = not_stated  # answered right: declining it is what must not be learnt
            counts["declines_rejected"] += 1
        if not (wrong or foil):
            continue
        chosen = rng.choice(right) if right else row["answer"]
        rejected = rng.choice(wrong) if wrong else foil
        pairs.append({"prompt": prompt, "chosen": completion(prompt, chosen), "rejected": completion(prompt, rejected)})
        counts["right"] += len(right)
        counts["pairs"] += 1
        counts["unanswerable"] += unanswerable
        counts["chosen_own"] += bool(right)
        counts["rejected_own"] += bool(wrong)
    return Dataset.from_list(pairs), dict(counts)


def load_pairs(spec: str, settings: Settings) -> Dataset:
    """Pairs made earlier: a JSONL file written by `--save_pairs`, or a Hub dataset pushed by
    `--push_pairs` (`REPO[@REV]`).

    Returns:
        A Dataset of prompt / chosen / rejected strings.

    Raises:
        QAError: no such file, or a file or dataset that holds no pairs (the message says which columns lack).
        HubError: the dataset cannot be fetched.
    """
    ref = ModelRef.parse(spec)
    if ref.path is not None or not is_hub_dataset(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise QAError(f"--pairs {spec}: no such file (give a JSONL file written by --save_pairs, or REPO[@REV])")
        pairs = load_dataset("json", data_files=str(path), split="train")
    else:
        hub = api(settings)
        download = call(
            lambda: hub.hf_hub_download(ref.repo_id, PAIRS_FILE, repo_type="dataset", revision=ref.revision),
            settings, ref.repo_id, ref.revision,
        )  # fmt: skip
        pairs = load_dataset("json", data_files=download, split="train")
    missing = [column for column in PAIR_COLUMNS if column not in pairs.column_names]
    if missing or not len(pairs):
        raise QAError(
            f"--pairs {spec}: no preference pairs in it ({', '.join(missing) or 'no rows'}; "
            f"a pair is {' / '.join(PAIR_COLUMNS)})"
        )
    return pairs.select_columns(list(PAIR_COLUMNS))


def push_pairs(pairs: Dataset, repo_id: str, settings: Settings, about: str) -> str:
    """Push `pairs` to the Hub as a dataset repo: pairs.jsonl (prompt, chosen, rejected: TRL's
    preference format, `load_dataset(repo_id)` reads it) and a card saying how they were made.

    Returns:
        The commit's sha.

    Raises:
        HubError: no write access, or the Hub is unreachable.
    """
    data = DatasetCardData(tags=["dpo", "preference", "qa-toolkit"], task_categories=["question-answering"])
    card = f"---\n{data.to_yaml()}\n---\n# {repo_id}\n\n{about}\n"
    with tempfile.TemporaryDirectory() as folder:
        pairs.to_json(Path(folder) / PAIRS_FILE)
        return push_folder(
            folder, repo_id, settings, f"{len(pairs)} preference pairs", extra_files={"README.md": card},
            repo_type="dataset",
        )  # fmt: skip


class PreferenceTrainer(DPOTrainer):
    """TRL's DPOTrainer saving only the adapter it tunes: TRL keeps the starting adapter as a frozen
    second adapter named "ref" to compute the reference's log-probabilities, and PEFT would save it
    into every checkpoint (a ref/ folder, pushed with it)."""

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        model = self.accelerator.unwrap_model(self.model)
        reference = model.peft_config.pop("ref", None)
        try:
            super()._save(output_dir, state_dict)
        finally:
            if reference is not None:
                model.peft_config["ref"] = reference
