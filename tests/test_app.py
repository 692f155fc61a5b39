import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app import build_app
from qa_core.config import load_settings


@pytest.fixture(scope="module")
def client(demo):
    app = build_app(demo, load_settings(None))
    app.queue(default_concurrency_limit=1).launch(
        server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True
    )
    yield Client(app.local_url, verbose=False)
    app.close()


def test_qa_endpoint_answers_and_streams(client):
    answer = client.predict("What is a bond?", 8, 0.0, api_name="/qa")
    assert isinstance(answer, str) and answer
    partials = list(client.submit("What is a bond?", 8, 0.0, api_name="/qa"))
    assert len(partials) > 1 and partials[-1] == answer  # greedy: streaming gives the same text


def test_empty_question_is_a_friendly_error(client):
    with pytest.raises(AppError, match="the question is empty"):
        client.predict("   ", 8, 0.0, api_name="/qa")
