"""Gradio app: ask the loaded model questions, in the browser or through `gradio_client`.

    python app.py                                   # http://127.0.0.1:7860
    QA_BASE_MODEL=Qwen/Qwen2.5-0.5B-Instruct python app.py
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=8080 python app.py

From Python:

    from gradio_client import Client
    print(Client("http://127.0.0.1:7860").predict("What is a bond?", 128, 0.0, api_name="/qa"))

This file only wires the UI to `qa_core`; the logic lives there.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from qa_core.config import Settings, load_settings
from qa_core.demo_model import DEMO_NOTICE
from qa_core.errors import QAError
from qa_core.generate import GenerationSettings
from qa_core.models import LoadedModel, load_model
from qa_core.qa import ask_stream


def build_app(loaded: LoadedModel, settings: Settings) -> gr.Blocks:
    """Build the Blocks app around an already loaded model."""

    def qa(question: str, max_new_tokens: float, temperature: float) -> Iterator[str]:
        generation = GenerationSettings(max_new_tokens=int(max_new_tokens), temperature=float(temperature))
        text = ""
        try:
            for piece in ask_stream(loaded, question, None, "auto", generation):
                text += piece
                yield text
        except QAError as exc:
            raise gr.Error(settings.redact(str(exc))) from None

    with gr.Blocks(title="Domain QA") as app:
        gr.Markdown(f"# Domain QA\nModel: `{loaded.description}`")
        if loaded.is_demo:
            gr.Markdown(f"**{DEMO_NOTICE}**", elem_id="demo-banner")
        with gr.Tab("QA"):
            question = gr.Textbox(label="Question", placeholder="What is a bond?")
            with gr.Accordion("Generation settings", open=False):
                max_new_tokens = gr.Slider(1, 1024, value=256, step=1, label="Max new tokens")
                temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0 = greedy)")
            button = gr.Button("Answer", variant="primary")
            answer = gr.Textbox(label="Answer", lines=8)
            inputs = [question, max_new_tokens, temperature]
            button.click(qa, inputs, answer, api_name="qa")
            question.submit(qa, inputs, answer, api_name=False)
    return app


def main() -> None:
    settings = load_settings()
    loaded = load_model(settings=settings)
    # One generation at a time per model: a second would only slow both down on one device.
    build_app(loaded, settings).queue(default_concurrency_limit=1).launch()


if __name__ == "__main__":
    main()
