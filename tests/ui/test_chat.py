"""Chat: several turns through the HTTP API and in the browser; what was typed is shown as text."""

import pytest
from gradio_client import Client

from test_browser import open_tab


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


def test_multi_turn_chat_through_the_api(client):
    first = client.predict("What is the opposite of hot?", [], "demo", 16, 0.0, api_name="/chat")
    assert isinstance(first, str)
    # gradio 6 hands history back with content as a list of parts: the second turn must work too
    history = [{"role": "user", "content": [{"type": "text", "text": "What is the opposite of hot?"}]},
               {"role": "assistant", "content": [{"type": "text", "text": first}]}]
    second = client.predict("And of big?", history, "demo", 16, 0.0, api_name="/chat")
    third = client.predict("Thanks", history + [{"role": "user", "content": "And of big?"},
                                                {"role": "assistant", "content": second}],
                           "demo", 8, 0.0, api_name="/chat")
    assert isinstance(second, str) and isinstance(third, str)


def test_chat_refuses_a_model_that_is_not_a_run(client):
    with pytest.raises(Exception, match="no finished run"):
        client.predict("Hi", [], "/etc", 8, 0.0, api_name="/chat")


def send(page, message: str, turn: int, tries: int = 3):
    """Type and send a message; again if the page had not wired the box yet (just after the
    tab was opened the first input can be lost). Waits until it is in the conversation."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        page.fill("#chat-input textarea", message)
        page.click("#chat-send")
        try:
            page.wait_for_function("(n) => document.querySelectorAll('#chatbot .user').length >= n",
                                   arg=turn, timeout=15000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"the chat never took message {turn}")


@pytest.mark.browser
def test_two_turns_in_the_browser_and_html_shown_as_text(server, page):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("#start-btn")
    open_tab(page, "chat")
    # The suggested questions show under their title, without a header row naming a textbox.
    page.locator("#chat-examples").wait_for()
    assert "Textbox" not in page.inner_text("#tab-chat") and "Your message" not in page.inner_text("#chat-examples")
    typed = '<img src="x" onerror="window.pwned = 1"> & *stars*'
    for turn, message in enumerate([typed, "What is the opposite of hot?"], start=1):
        send(page, message, turn)
        page.wait_for_function(  # the answer has arrived: the bot bubble of this turn has text
            "(n) => [...document.querySelectorAll('#chatbot .bot')].filter(b => b.innerText.trim()).length >= n",
            arg=turn, timeout=60000)
    text = page.inner_text("#chatbot")
    assert typed in text and "What is the opposite of hot?" in text
    assert "⚠" not in text  # the second turn did not fail
    assert page.locator("#chatbot img").count() == 0
    assert page.evaluate("() => window.pwned") is None
    assert not errors
