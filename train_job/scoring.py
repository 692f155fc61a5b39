"""Answer scores during training: held-out questions answered at every evaluation, as `eval_*` metrics.

    python train_job/run.py --config configs/smollm2-cpu.yaml --data runs/facts.csv --score_questions 16
    python train_job/run.py --config configs/smollm2-cpu.yaml --data runs/facts.csv \
        --metric_for_best_model eval_exact_figure --load_best_model_at_end     # final = the best checkpoint

A falling loss says little about answers: a QA model's loss keeps falling while its answers stop
improving. So before the first step (the base model, its adapter switched off) and at every
evaluation the run answers the first `--score_questions` questions of its held-out split (and the
unanswerable ones made from them, as for training) the way `qa_core.evaluate --modes finetuned`
does: same prompt, each row's context, batched greedy generation, the same scores. They enter
the Trainer's log history as `eval_exact_figure`, `eval_contains_answer` ... , so
`metric_for_best_model`, `load_best_model_at_end`, `EarlyStoppingCallback` and the trackers
(`--report_to trackio` or `tensorboard`) take them like the eval loss; the checkpoint records,
commits and cards carry them (train_job/pushing.py, qa_core/hub/publish.py). The base's scores
are logged at step 0. Generation is greedy, and no evaluation changes the random numbers training
draws (`EvaluationDrawsNothing`): a run trains the same weights with scoring on or off.
"""

from __future__ import annotations

import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from qa_core.config import Settings
from qa_core.evaluate import evaluate
from qa_core.generation import GenerationSettings
from qa_core.hub.checkpoints import SCORES
from qa_core.models import LoadedModel, answering_with


class AnswerScoreCallback(TrainerCallback):
    """Answers `questions` with the model being trained at every evaluation (and with the base
    before training) and logs the scores as `eval_*` metrics."""

    def __init__(
        self,
        trainer: Trainer,
        loaded: LoadedModel,
        questions: Dataset,
        style: str,
        settings: Settings,
        batch_size: int = 8,
    ) -> None:
        self.trainer, self.questions, self.settings, self.batch_size = trainer, questions, settings, batch_size
        self.loaded, self.style = loaded, style

    def score(self, mode: str) -> dict[str, float]:
        """The scores of the model as it is now: `finetuned` with the adapter, `base` without."""
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        answering = answering_with(self.loaded, model, adapter="this run")
        was_training = model.training
        model.eval()
        try:
            with torch.random.fork_rng(devices=[]):  # nothing drawn here may change what training draws
                (row,), _ = evaluate(
                    answering,
                    self.questions,
                    [mode],
                    self.settings,
                    GenerationSettings(max_new_tokens=128),
                    prompt_style=self.style,
                    batch_size=self.batch_size,
                    similarity=False,  # not a logged score: no embedding model loaded into a training run
                )
        finally:
            model.train(was_training)
        return {f"eval_{name}": round(row[name], 6) for name in SCORES if row[name] is not None}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if state.global_step == 0:  # a resumed run has the base's scores in its log history already
            self.trainer.log(self.score("base"))

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics: dict, **kwargs
    ) -> None:
        scores = self.score("finetuned")
        # `metrics` is what the trainer judges the checkpoint by (metric_for_best_model, early stopping)
        metrics.update(scores)
        self.trainer.log(scores)


class EvaluationDrawsNothing(TrainerCallback):
    """Puts torch's random state back as it was before each evaluation during training, so that
    when and how often a run evaluates (or scores answers) never changes the dropout masks and
    batches of the steps after: each evaluation's data loader draws a seed from it."""

    def __init__(self) -> None:
        self.saved: tuple | None = None

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if control.should_evaluate:  # set just before by the trainer's flow callback
            cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
            self.saved = (torch.get_rng_state(), cuda)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs) -> None:
        if self.saved is not None:
            cpu, cuda = self.saved
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)
            self.saved = None
