"""Gradio app and Hugging Face Space: QA, context QA, RAG over your documents, and the model.

    python app.py                                   # http://127.0.0.1:7860
    QA_BASE_MODEL=Qwen/Qwen2.5-0.5B-Instruct QA_ADAPTER=me/qa-run python app.py
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=8080 python app.py

Every action is also an API endpoint (docs/app.md lists them):

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860")
    client.predict("What is a bond?", 128, 0.0, api_name="/qa")
    client.predict([handle_file("report.pdf")], api_name="/ingest")
    for partial in client.submit("What was the CET1 ratio?", "retrieve-then-answer", 5, False, 256, api_name="/rag"):
        print(partial[0])

This file only wires the UI to `qa_core.serving.QAService`; the logic lives there.
"""

from __future__ import annotations

# ZeroGPU needs `spaces` imported before anything that can initialise CUDA (torch, transformers).
try:
    import spaces

    gpu = spaces.GPU  # ZeroGPU attaches a GPU while a decorated (generating) function runs
except ImportError:  # anywhere else there is nothing to attach

    def gpu(fn):
        return fn


import functools
import inspect
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import pandas as pd

from qa_core.config import load_settings
from qa_core.demo_model import DEMO_NOTICE
from qa_core.errors import QAError
from qa_core.generation import GenerationSettings
from qa_core.grounding import Grounded
from qa_core.hub.checkpoints import score_label, split_scores
from qa_core.memory import limit_malloc_arenas
from qa_core.rag import MODES
from qa_core.rag.answer import RagAnswer, RagOptions
from qa_core.serving import CONTEXT_MODES, QAService

DOCUMENTS = {"concurrency_id": "documents", "concurrency_limit": 4}  # retrieval never waits behind it
CHUNK_COLUMNS = ["#", "source", "page/row", "score", "text"]
CHECKPOINT_COLUMNS = ["step", "loss", "eval loss", "exact figure", "date", "commit"]
PLOTTED_SCORES = ("eval_exact_figure", "eval_contains_answer", "eval_not_stated")  # more would crowd the plot
UNEXPECTED = "Something went wrong on the server (it has been logged). Please try again."
# A failed request is told in a toast (gr.Error). Gradio would also cover each of the event's outputs
# with a red "Error" badge until the next success, hiding what they showed (the visitor's document
# list after a failed upload, the model line after a failed load): those outputs keep their content.
# An evaluation's table has some twenty columns: it scrolls sideways rather than break headers mid-word.
APP_CSS = """[data-testid="status-tracker"]:has(span.error) { display: none !important; }
#results table { display: block; overflow-x: auto; }
#results th, #results td { white-space: nowrap; }
"""
log = logging.getLogger("qa_toolkit.app")
TRACK_TQDM = gr.Progress(track_tqdm=True)  # Gradio's idiom: the default marks the progress parameter


def friendly(redact: Callable[[str], str]) -> Callable[[Callable], Callable]:
    """A decorator that shows a handler's errors as a message in the page (and to API clients),
    never a traceback: a `QAError` as it is; anything else is logged here and shown as a short
    generic message, never its own text (it may name paths or internals of the server)."""

    def visible(exc: Exception) -> gr.Error:
        if isinstance(exc, QAError):  # expected (bad input, a missing repo): one log line, no traceback
            message = redact(str(exc))
            log.warning("refused: %s", message)
            return gr.Error(message, print_exception=False)
        log.error("unexpected error: %s", redact(f"{type(exc).__name__}: {exc}"), exc_info=exc)
        return gr.Error(UNEXPECTED)

    def decorate(fn: Callable) -> Callable:
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def generator(*args, **kwargs):
                try:
                    yield from fn(*args, **kwargs)
                except Exception as exc:
                    raise visible(exc) from None

            return generator

        @functools.wraps(fn)
        def function(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                raise visible(exc) from None

        return function

    return decorate


def model_queue(service: QAService) -> dict:
    """Event options for anything that generates: as many in flight as the batcher answers together
    (it owns the model)."""
    return {"concurrency_id": "model", "concurrency_limit": service.settings.max_batch_size}


def user(profile: gr.OAuthProfile | None) -> str | None:
    """A signed-in visitor (QA_LOGIN) works on their own collection, kept across visits; anyone else
    on their browser session's. Gradio fills in `profile` (None when signed out or without login)."""
    return profile.username if profile else None


def model_info(service: QAService) -> str:
    loaded = service.loaded
    return f"**Model:** `{loaded.description}`" + (
        f" — chosen because {loaded.chosen_because}" if loaded.chosen_because else ""
    )


def figure_report(grounded: Grounded | None) -> str:
    """The grounded answer's report as the page shows it: what the sources do not state, or what
    replaced the model's answer and why; then each figure the model stated, with a ✓ and the
    sentence that states it, or with why it has none ("" until the answer is complete)."""
    if grounded is None:
        return ""
    check = grounded.check
    lines = []
    if grounded.not_stated:
        lines.append(
            f"ℹ️ **Not stated in the sources** ({grounded.not_stated}). Answer before the check: “{grounded.stated}”"
        )
    elif grounded.replaced:
        lines.append(f"⚠️ **The model's answer was replaced** (QA_UNSUPPORTED={grounded.replaced}): “{grounded.stated}”")
    elif check.flagged:
        lines.append("⚠️ **Check these figures before relying on the answer.**")
    lines += [f"- ✓ {f.figure}: [{f.source}] “{f.sentence}” ({f.why})" for f in check.supported]
    lines += [f"- ✗ {f.figure}: stated in [{f.source}] “{f.sentence}”, but {f.why}" for f in check.off_question]
    lines += [f"- ✗ {figure}: in none of the sources" for figure in check.unsupported]
    return "\n".join(lines)


def grounded_outputs(grounded: Grounded | None) -> tuple[str, dict]:
    """The report for the page and, whole, for API clients (empty while the answer streams)."""
    return figure_report(grounded), grounded.to_dict() if grounded else {}


def figure_outputs(tab: str) -> tuple[gr.Markdown, gr.JSON]:
    """Where a grounded answer's figure check goes: read on the page, and whole for API clients."""
    return (
        gr.Markdown(elem_id=f"{tab}-figures"),
        gr.JSON(label="The answer's report: figures checked against the sources", visible=False),
    )


def qa_tab(service: QAService, shown: Callable) -> None:
    """Ask the model a question on its own."""

    @gpu
    @shown
    def qa(question: str, max_new_tokens: float, temperature: float, repetition_penalty: float = 1.0):
        settings = GenerationSettings(int(max_new_tokens), float(temperature), repetition_penalty=repetition_penalty)
        yield from service.answer_stream(question, None, settings)

    question = gr.Textbox(label="Question", placeholder="What is a bond?", elem_id="qa-question")
    with gr.Accordion("Generation settings", open=False):
        max_new_tokens = gr.Slider(1, 1024, value=256, step=1, label="Max new tokens")
        temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0 = greedy)")
        # Not on the grounded tabs: the penalty counts the context's tokens too, and answers stop copying its figures.
        penalty = gr.Slider(
            1.0, 2.0, value=1.0, step=0.05, label="Repetition penalty (1 = none; 1.1–1.2 stops an answer that loops)"
        )
    ask_button = gr.Button("Answer", variant="primary", elem_id="qa-button")
    answer = gr.Textbox(label="Answer", lines=6, elem_id="qa-answer")
    inputs = [question, max_new_tokens, temperature, penalty]
    ask_button.click(qa, inputs, answer, api_name="qa", **model_queue(service))
    question.submit(qa, inputs, answer, api_name=False, **model_queue(service))


def context_qa_tab(service: QAService, shown: Callable) -> None:
    """Ask about a pasted or uploaded text: answered by the model, or quoted from the text."""

    @gpu
    @shown
    def context_qa(question: str, context: str, file: str | None, max_new_tokens: float, mode: str):
        if file:
            context = service.read_context_file(file, Path(file).name)
        generation = GenerationSettings(int(max_new_tokens))
        for answer, support, grounded in service.context_qa_stream(question, context, mode, generation):
            yield answer, support, *grounded_outputs(grounded)

    question = gr.Textbox(label="Question", elem_id="cqa-question")
    with gr.Row():
        context = gr.Textbox(label="Context (paste)", lines=8, elem_id="cqa-context")
        file = gr.File(label="…or upload a file", file_types=[".txt", ".md", ".pdf", ".csv"], type="filepath")
    with gr.Row():
        mode = gr.Radio(
            list(CONTEXT_MODES),
            value=service.context_mode,
            label="Answer: written by the model, or quoted from the context (extractive)",
            elem_id="cqa-mode",
        )
        tokens = gr.Slider(1, 1024, value=256, step=1, label="Max new tokens")
    button = gr.Button("Answer from the context", variant="primary", elem_id="cqa-button")
    answer = gr.Textbox(label="Answer", lines=4, elem_id="cqa-answer")
    support = gr.HighlightedText(
        label="Supporting sentences (closest: the context does not state the answer)",
        color_map={"support": "green", "closest": "gray"},
        elem_id="cqa-support",
    )
    report, checked = figure_outputs("cqa")
    button.click(
        context_qa,
        [question, context, file, tokens, mode],
        [answer, support, report, checked],
        api_name="context_qa",
        **model_queue(service),
    )


def chunks_table(result: RagAnswer) -> list[list]:
    return [
        [
            n,
            hit.source + hit.from_collection,
            hit.metadata.get("page", hit.metadata.get("row", "")),
            round(hit.score, 3),
            hit.text[:300],
        ]
        for n, hit in enumerate(result.hits, start=1)
    ]


def documents_panel(service: QAService, shown: Callable, app: gr.Blocks) -> None:
    """A visitor's own collection: upload, list and delete documents; they go when the page closes."""

    def documents_table(session: str, username: str | None) -> list[list]:
        return [[d["source"], d["title"], d["chunks"]] for d in service.collections.documents(session, username)]

    @shown
    def ingest(files: list[str] | None, request: gr.Request, profile: gr.OAuthProfile | None, progress=TRACK_TQDM):
        if not files:
            raise QAError("choose one or more .txt, .md, .pdf or .csv files to upload")
        report = service.collections.ingest(request.session_hash, files, [Path(f).name for f in files], user(profile))
        lines = [report.summary()] + [f"- skipped: {problem}" for problem in report.problems]
        return "\n".join(lines), documents_table(request.session_hash, user(profile))

    @shown
    def documents(request: gr.Request, profile: gr.OAuthProfile | None):
        return documents_table(request.session_hash, user(profile))

    @shown
    def delete_document(source: str, request: gr.Request, profile: gr.OAuthProfile | None):
        removed = service.collections.delete_document(request.session_hash, source.strip(), user(profile))
        return f"{source}: {removed} chunks deleted", documents_table(request.session_hash, user(profile))

    def end_session(request: gr.Request) -> None:
        service.collections.end_session(request.session_hash)

    files = gr.File(
        label="Documents (.txt .md .pdf .csv)",
        file_count="multiple",
        file_types=[".txt", ".md", ".pdf", ".csv"],
        elem_id="rag-files",
    )
    ingest_button = gr.Button("Add to my collection", elem_id="rag-ingest")
    status = gr.Markdown(elem_id="rag-status")
    table = gr.Dataframe(
        headers=["source", "title", "chunks"],
        label="My documents",
        interactive=False,
        wrap=True,  # long file names wrap rather than push the chunks column out of sight
        column_widths=["50%", "32%", "18%"],
        elem_id="rag-docs",
    )
    with gr.Row():
        doomed = gr.Textbox(label="Source to delete", scale=3)
        delete_button = gr.Button("Delete", scale=1)
    ingest_button.click(ingest, files, [status, table], api_name="ingest", **DOCUMENTS)
    delete_button.click(delete_document, doomed, [status, table], api_name="delete_document", **DOCUMENTS)
    app.load(documents, None, table, api_name="documents", **DOCUMENTS)
    app.unload(end_session)


def rag_panel(service: QAService, shown: Callable) -> None:
    """Questions over the visitor's documents: the answer, its citations, the chunks retrieved and
    the figure check."""

    @gpu
    @shown
    def rag(
        question: str,
        mode: str,
        k: float,
        hybrid: bool,
        max_new_tokens: float,
        request: gr.Request,
        profile: gr.OAuthProfile | None,
    ):
        options = RagOptions(mode, int(k), bool(hybrid), "auto", GenerationSettings(int(max_new_tokens)))
        for answer, result in service.rag_stream(request.session_hash, question, options, user(profile)):
            yield answer, result.citations, chunks_table(result), *grounded_outputs(result.grounded)

    gr.Markdown(service.rag_scope(), elem_id="rag-scope")
    question = gr.Textbox(label="Question", elem_id="rag-question")
    with gr.Row():
        mode = gr.Radio(
            list(MODES),
            value=service.rag_mode,
            label="Mode",
            elem_id="rag-mode",
        )
        k = gr.Slider(1, 10, value=5, step=1, label="Chunks (k)")
        hybrid = gr.Checkbox(label="Hybrid (BM25 + dense)")
    tokens = gr.Slider(1, 1024, value=256, step=1, label="Max new tokens")
    searched = "the documents" if service.collections.published else "my documents"
    rag_button = gr.Button(f"Answer from {searched}", variant="primary", elem_id="rag-button")
    answer = gr.Textbox(label="Answer", lines=5, elem_id="rag-answer")
    report, checked = figure_outputs("rag")
    sources = gr.Textbox(label="Citations", lines=3, elem_id="rag-sources")
    chunks = gr.Dataframe(headers=CHUNK_COLUMNS, label="Retrieved chunks", interactive=False, elem_id="rag-chunks")
    rag_button.click(
        rag,
        [question, mode, k, hybrid, tokens],
        [answer, sources, chunks, report, checked],
        api_name="rag",
        **model_queue(service),
    )


def rag_tab(service: QAService, shown: Callable, app: gr.Blocks) -> None:
    """The visitor's documents on the left, questions over them on the right."""
    with gr.Row():
        with gr.Column(scale=1):
            documents_panel(service, shown, app)
        with gr.Column(scale=2):
            rag_panel(service, shown)


def loss_curves(rows: list[dict], logged: list[dict]) -> pd.DataFrame:
    """Training and eval loss by step, one row per point, for the line plot: every loss the run
    logged when the checkpoints carry its log (one checkpoint's loss is one noisy batch), else the
    checkpoints' own."""
    points = logged or [
        {"step": row["step"], key: row[column]}
        for row in rows
        for key, column in (("loss", "loss"), ("eval_loss", "eval loss"))
        if row[column] is not None
    ]
    return pd.DataFrame(
        [
            {"step": point["step"], "loss": point[key], "series": series}
            for point in points
            for key, series in (("loss", "loss"), ("eval_loss", "eval loss"))
            if key in point
        ],
        columns=["step", "loss", "series"],
    )


def score_curves(history: list[dict]) -> pd.DataFrame:
    """Answer scores by step for the line plot (a record's `answer_scores`), each base score (step 0)
    a flat line across the run, so the checkpoints are seen against it."""
    base, trained = split_scores(history)
    points = []
    for key in PLOTTED_SCORES:
        label = score_label(key)
        points += [{"step": e["step"], "score": e[key], "series": label} for e in trained if key in e]
        if key in base and trained:
            ends = (trained[0]["step"], trained[-1]["step"])
            points += [{"step": step, "score": base[key], "series": f"{label} (base)"} for step in ends]
    return pd.DataFrame(points, columns=["step", "score", "series"])


def model_tab(service: QAService, shown: Callable, app: gr.Blocks, info: gr.Markdown) -> None:
    """Pushed checkpoints of a run, loading one as the adapter, base vs fine-tuned, the latest evaluation."""

    @shown
    def checkpoints(repo: str):
        rows, logged, scores = service.checkpoints(repo)
        table = [[row[c] for c in CHECKPOINT_COLUMNS] for row in rows]
        return table, loss_curves(rows, logged), score_curves(scores)

    def pick_checkpoint(selected: gr.SelectData) -> str:
        return str(selected.row_value[0])  # the step of the clicked row

    # Not on the GPU: on ZeroGPU a decorated function runs in a forked worker, and an adapter
    # attached there would be gone when it returns.
    @shown
    def load_adapter(repo: str, revision: str):
        service.load_adapter(repo, revision)
        return model_info(service)

    @shown
    def load_best(repo: str):
        service.load_adapter(repo, "best")
        return model_info(service), "best"

    @gpu
    @shown
    def compare(question: str, max_new_tokens: float, context: str):
        return service.compare(question, GenerationSettings(int(max_new_tokens)), context)

    with gr.Row():
        repo = gr.Textbox(label="Adapter: Hub repo", placeholder="your-name/qa-run", scale=3, elem_id="repo")
        list_button = gr.Button("List checkpoints", scale=1, elem_id="list-checkpoints")
    with gr.Row():
        checkpoint_table = gr.Dataframe(
            headers=CHECKPOINT_COLUMNS,
            label="Pushed checkpoints (click a row to pick it)",
            interactive=False,
            elem_id="checkpoints",
            scale=3,
        )
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="loss", color="series", title="Loss by step", elem_id="loss-plot")
        score_plot = gr.LinePlot(
            x="step",
            y="score",
            color="series",
            title="Held-out answer scores by step (base: flat)",
            y_lim=[0, 1],
            elem_id="score-plot",
        )
    with gr.Row():
        revision = gr.Textbox(label="Revision: step, best, commit or branch", placeholder="main", scale=3)
        load_button = gr.Button("Load adapter", scale=1, elem_id="load-adapter")
        best_button = gr.Button("Load best", scale=1, elem_id="load-best")
    list_button.click(checkpoints, repo, [checkpoint_table, loss_plot, score_plot], api_name="checkpoints", **DOCUMENTS)
    checkpoint_table.select(pick_checkpoint, None, revision, api_name=False)
    load_button.click(load_adapter, [repo, revision], info, api_name="load_adapter", **model_queue(service))
    best_button.click(load_best, repo, [info, revision], api_name="load_best", **model_queue(service))
    question = gr.Textbox(label="Question to compare", elem_id="cmp-question")
    compare_context = gr.Textbox(
        "",
        label="Context (optional): the document the question is about; without one both answer closed-book",
        lines=3,
        elem_id="cmp-context",
    )
    tokens = gr.Slider(1, 1024, value=128, step=1, label="Max new tokens")
    compare_button = gr.Button("Compare base and fine-tuned", elem_id="cmp-button")
    with gr.Row():
        base_answer = gr.Textbox(label="Base model", lines=5, elem_id="cmp-base")
        tuned_answer = gr.Textbox(label="Fine-tuned", lines=5, elem_id="cmp-tuned")
    compare_button.click(
        compare,
        [question, tokens, compare_context],
        [base_answer, tuned_answer],
        api_name="compare",
        **model_queue(service),
    )
    with gr.Accordion("Latest evaluation (python -m qa_core.evaluate)", open=False):
        results = gr.Markdown(elem_id="results")
    app.load(service.latest_results, None, results, api_name="results", **DOCUMENTS)


def build_app(service: QAService) -> gr.Blocks:
    """The Blocks app around a `QAService` whose model is already loaded: one tab per function."""
    shown = friendly(service.settings.redact)
    with gr.Blocks(title="Domain QA") as app:
        gr.Markdown("# Domain QA")
        if service.settings.login:
            gr.LoginButton(elem_id="login")
        info = gr.Markdown(model_info(service))
        if service.loaded.is_demo:
            gr.Markdown(f"⚠️ **{DEMO_NOTICE}**", elem_id="demo-banner")
        with gr.Tab("QA"):
            qa_tab(service, shown)
        with gr.Tab("Context QA"):
            context_qa_tab(service, shown)
        with gr.Tab("RAG"):
            rag_tab(service, shown, app)
        with gr.Tab("Model"):
            model_tab(service, shown, app, info)
    return app


def create_app(service: QAService) -> gr.Blocks:
    """The app with its queue: at most QA_QUEUE_MAX_SIZE requests wait; more are turned away."""
    return build_app(service).queue(default_concurrency_limit=4, max_size=service.settings.queue_max_size)


def main() -> int:
    """Serve until stopped; returns 2 with one `error:` line, as the command lines do, when the
    settings or the model cannot be used (the messages are redacted where they are made)."""
    limit_malloc_arenas()  # before the model and the worker threads allocate
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("qa_toolkit").setLevel(logging.INFO)  # the toolkit's start-up steps; libraries' warnings only
    try:
        service = QAService(load_settings())
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # SIGTERM (a Space or container being stopped) ends the server as Ctrl-C does: Gradio stops
    # taking requests and closes; then the visitors' temporary collections go and the threads stop.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        # show_error=False: only the messages of gr.Error reach visitors (see `friendly`).
        create_app(service).launch(max_file_size=f"{service.settings.max_file_mb:g}mb", show_error=False, css=APP_CSS)
    finally:
        service.close(end_sessions=True)
    return 0


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
