"""The Playground in a real browser: sign in with an app key, generate a video through the form, watch
it play, download it, remix it, delete it; by keyboard; and at phone width.

Videos are made with an app of the test's own (pro, 5 an hour), not the development app that other
test modules share; the development key only signs in."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Browser, Locator, Page, Response, Route, expect

from devhost.config import load_values
from gateway.jobs import JobStore
from gateway.tables import Tables, table_service
from tests.browser.conftest import (
    VIDEO_TIMEOUT_MS,
    ConsolePage,
    api_error_message,
    assert_controls_are_named,
    poll,
)
from tests.conftest import PROJECT_DIR, RunningStack
from tests.contract.support import tiny_png
from tests.gateway_client import AppCredentials
from tests.mp4 import boxes, duration_seconds

VIDEO_ID = re.compile(r"video_[A-Za-z0-9_-]+")

# True once #player has a source other than `previous`, can show a frame (HAVE_CURRENT_DATA) and
# lasts the requested seconds, give or take half a second.
PLAYABLE = """([previous, seconds]) => {
  const player = document.querySelector("#player");
  return !!player && !!player.currentSrc && player.currentSrc !== previous
    && player.readyState >= 2 && Math.abs(player.duration - seconds) < 0.5;
}"""


def own_app(stack: RunningStack, purpose: str) -> AppCredentials:
    """A pro app for one test, so the quota it spends is nobody else's."""
    return stack.client.create_app("pro", name=f"browser {purpose} {uuid.uuid4().hex[:8]}")


def api_video(stack: RunningStack, key: str, video_id: str) -> dict[str, Any]:
    response = stack.client.get_video(key, video_id)
    assert response.status_code == 200, response.text
    return dict(response.json())


def job_options(stack: RunningStack, app: AppCredentials, video_id: str) -> dict[str, Any]:
    """The per-request options the gateway kept on the job (the Video object does not show them)."""
    prefix = load_values(PROJECT_DIR, stack.env).get("TABLE_PREFIX", "")
    job = JobStore(Tables(table_service(stack.storage_connection_string), prefix=prefix)).get_job(
        app.id, video_id
    )
    assert job is not None, video_id
    return dict(job.options)


def wait_until_playable(console: ConsolePage, seconds: int, previous: str = "") -> str:
    """Wait for the player to be able to play a new video of `seconds`; its source URL."""
    console.page.wait_for_function(PLAYABLE, arg=[previous, seconds], timeout=VIDEO_TIMEOUT_MS)
    return str(console.page.evaluate("document.querySelector('#player').currentSrc"))


def history_entries(history: Locator) -> Locator:
    """History's video buttons (their names start with the video id), not its paging buttons."""
    return history.get_by_role("listitem").get_by_role("button", name=VIDEO_ID)


def assert_quota_matches_the_api(console: ConsolePage, key: str) -> None:
    usage = console.stack.client.usage(key)
    quota = console.panel("Playground").get_by_role("region", name="Quota")
    for window in ("hour", "day"):
        used, limit = usage["used"][window], usage["limits"][window]
        expect(quota).to_contain_text(f"{window.title()}: {used} / {limit} used")


def test_a_video_is_generated_played_downloaded_remixed_and_deleted(
    stack: RunningStack, console: ConsolePage
) -> None:
    app = own_app(stack, "playground")
    console.keep_secret(app.api_key)
    console.keep_secret(stack.admin_key)
    console.open()
    playground = console.panel("Playground")
    console.sign_in_app(app.api_key)
    # The key lives in this tab's sessionStorage under the contract's name, nowhere else.
    assert console.page.evaluate("sessionStorage.getItem('vgw.appKey')") == app.api_key
    console.assert_secrets_kept()

    marker = f"bw-{uuid.uuid4().hex[:10]}"
    prompt = f"{marker} a paper boat drifting down a rainy street"
    form = playground.get_by_role("form", name="New video")
    form.get_by_label("Model").select_option("sora-2")
    form.get_by_label("Duration").select_option("4")
    form.get_by_label("Size").select_option("1280x720")
    form.get_by_label("Prompt", exact=True).fill(prompt)
    # The duration options read as the contract says ("4 seconds"), valued by the model's seconds.
    expect(form.get_by_label("Duration").locator("option")).to_have_text(
        ["4 seconds", "8 seconds", "12 seconds"]
    )

    code = playground.get_by_role("region", name="Code")
    for language in ("curl", "Python", "JavaScript"):
        code.get_by_role("tab", name=language).click()
        shown = code.get_by_role("tabpanel")
        expect(shown).to_contain_text("sora-2")
        expect(shown).to_contain_text(marker)

    with console.page.expect_response(
        lambda r: r.request.method == "POST" and r.url == f"{stack.api}/v1/videos"
    ) as created_info:
        form.get_by_role("button", name="Generate").click()
    created = created_info.value
    assert created.status == 202, created.text()
    assert created.request.header_value("authorization") == f"Bearer {app.api_key}"
    assert (created.request.header_value("content-type") or "").startswith("application/json")
    first_id = str(created.json()["id"])

    # The form's choices reached the API as chosen.
    record = api_video(stack, app.api_key, first_id)
    assert (record["model"], record["seconds"], record["size"], record["prompt"]) == (
        "sora-2",
        "4",
        "1280x720",
        prompt,
    )

    current = playground.get_by_role("region", name="Current video")
    status = current.get_by_role("status")
    first_src = wait_until_playable(console, 4)
    expect(status).to_have_text(re.compile(r"^completed"))
    progress = current.get_by_role("progressbar", name="Progress")
    expect(progress).to_have_js_property("value", 100)
    assert api_video(stack, app.api_key, first_id)["status"] == "completed"
    console.screenshot("playground-completed")

    with console.page.expect_download() as download_info:
        current.get_by_role("button", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == f"{first_id}.mp4"
    data = Path(download.path()).read_bytes()
    assert boxes(data)[0][0] == "ftyp", "the download is not an MP4"
    assert abs(duration_seconds(data) - 4) < 0.5

    remix_prompt = f"{marker} the same boat, now at night"
    current.get_by_label("Remix prompt").fill(remix_prompt)
    with console.page.expect_response(
        lambda r: r.request.method == "POST" and r.url == f"{stack.api}/v1/videos/{first_id}/remix"
    ) as remix_info:
        current.get_by_role("button", name="Remix").click()
    assert remix_info.value.status == 202, remix_info.value.text()
    remix_id = str(remix_info.value.json()["id"])
    assert remix_id != first_id
    remix_src = wait_until_playable(console, 4, previous=first_src)
    expect(status).to_have_text(re.compile(r"^completed"))
    remix = api_video(stack, app.api_key, remix_id)
    assert remix["status"] == "completed"
    assert remix["remixed_from_video_id"] == first_id
    assert remix["prompt"] == remix_prompt

    history = playground.get_by_role("region", name="History")
    history.get_by_role("button", name="Refresh", exact=True).click()
    entries = history_entries(history)
    expect(entries).to_have_count(2)
    # Newest first, each named by its id, status and prompt.
    expect(entries.nth(0)).to_have_accessible_name(re.compile(rf"^{remix_id}\b.*completed.*{marker}"))
    expect(entries.nth(1)).to_have_accessible_name(re.compile(rf"^{first_id}\b.*completed.*{marker}"))
    assert_quota_matches_the_api(console, app.api_key)
    assert console.stack.client.usage(app.api_key)["used"]["hour"] == 2

    current.get_by_role("button", name="Delete").click()
    expect(status).to_have_text(re.compile(r"^deleted"))
    assert [d for d in console.guard.dialogs if d.startswith("confirm:")], "Delete asked no confirm()"
    poll(lambda: stack.client.get_video(app.api_key, remix_id).status_code == 404)
    # The current video is cleared: the player has no source and nothing loaded.
    console.page.wait_for_function(
        "(p => !p.hasAttribute('src') && p.readyState === 0)(document.querySelector('#player'))"
    )

    history.get_by_role("button", name="Refresh", exact=True).click()
    expect(entries).to_have_count(1)
    expect(entries.nth(0)).to_have_accessible_name(re.compile(rf"^{first_id}\b"))
    # A history entry opens its video in "Current video" again.
    entries.nth(0).click()
    wait_until_playable(console, 4, previous=remix_src)
    expect(status).to_have_text(re.compile(r"^completed"))
    assert_quota_matches_the_api(console, app.api_key)
    console.finish("playground")


def test_the_options_a_model_declares_are_shown_and_sent(stack: RunningStack, console: ConsolePage) -> None:
    app = own_app(stack, "options")

    def created_video(response: Response) -> bool:
        return response.request.method == "POST" and response.url == f"{stack.api}/v1/videos"

    console.keep_secret(app.api_key)
    console.open()
    console.sign_in_app(app.api_key)
    playground = console.panel("Playground")
    form = playground.get_by_role("form", name="New video")
    negative, sound, people = (form.get_by_label(name) for name in ("Negative prompt", "Sound", "People"))

    # veo-3.0 (Gemini) declares a negative prompt and person generation, narrowed to two values.
    form.get_by_label("Model").select_option("veo-3.0")
    expect(negative).to_be_visible()
    expect(people).to_be_visible()
    expect(sound).to_be_hidden()
    expect(people.locator("option")).to_have_count(3)  # "Model default" and the model's two
    assert people.locator("option").evaluate_all("(options) => options.map((o) => o.value)") == [
        "",
        "allow_all",
        "allow_adult",
    ]
    marker = f"bo-{uuid.uuid4().hex[:10]}"
    form.get_by_label("Prompt", exact=True).fill(f"{marker} a heron in the reeds")
    negative.fill("text overlays, blur")
    people.select_option("allow_adult")
    assert_controls_are_named(playground)
    console.screenshot("playground-options-veo-3.0")

    code = playground.get_by_role("region", name="Code")
    code.get_by_role("tab", name="Python").click()
    expect(code.get_by_role("tabpanel")).to_contain_text(
        'extra_body={"negative_prompt": "text overlays, blur", "person_generation": "allow_adult"}'
    )
    code.get_by_role("tab", name="curl").click()
    expect(code.get_by_role("tabpanel")).to_contain_text('"person_generation":"allow_adult"')

    with console.page.expect_response(created_video) as sent_info:
        form.get_by_role("button", name="Generate").click()
    assert sent_info.value.status == 202, sent_info.value.text()
    body = json.loads(sent_info.value.request.post_data or "")
    assert body["model"] == "veo-3.0"
    assert (body["negative_prompt"], body["person_generation"]) == ("text overlays, blur", "allow_adult")
    assert "generate_audio" not in body  # not the model's, and never sent when left at the default

    # With an image the same options go as multipart fields.
    form.get_by_label("Image").set_input_files(
        {"name": "heron.png", "mimeType": "image/png", "buffer": tiny_png()}
    )
    with console.page.expect_response(created_video) as form_info:
        form.get_by_role("button", name="Generate").click()
    assert form_info.value.status == 202, form_info.value.text()
    assert (form_info.value.request.header_value("content-type") or "").startswith("multipart/form-data")
    # Chromium does not show a body holding a file to Playwright: the job the gateway kept says it.
    assert job_options(stack, app, form_info.value.json()["id"]) == {
        "negative_prompt": "text overlays, blur",
        "person_generation": "allow_adult",
    }
    form.get_by_role("button", name="Remove image").click()

    # veo-3.1 takes sound but no person generation: the page shows exactly its inputs.
    form.get_by_label("Model").select_option("veo-3.1")
    expect(sound).to_be_visible()
    expect(people).to_be_hidden()
    sound.select_option("false")
    code.get_by_role("tab", name="Python").click()
    expect(code.get_by_role("tabpanel")).to_contain_text('"generate_audio": False')
    expect(code.get_by_role("tabpanel")).not_to_contain_text("person_generation")

    # A model without options shows none, and its snippets carry none.
    form.get_by_label("Model").select_option("sora-2")
    for control in (negative, sound, people):
        expect(control).to_be_hidden()
    expect(code.get_by_role("tabpanel")).not_to_contain_text("extra_body")
    expect(code.get_by_role("tabpanel")).not_to_contain_text("negative_prompt")
    assert stack.client.usage(app.api_key)["used"]["hour"] == 2
    console.finish("playground-options")


def test_sign_in_by_keyboard_with_accessible_names_and_tabs(
    stack: RunningStack, console: ConsolePage
) -> None:
    """The development app's key signs in (nothing is generated with it); a wrong key is refused
    with the API's message; the page works from the keyboard and names every control."""
    console.keep_secret(stack.dev_key)
    console.keep_secret(stack.admin_key)
    console.open()
    page = console.page
    playground, operators = console.panel("Playground"), console.panel("Operators")
    expect(console.tab("Playground")).to_have_attribute("aria-selected", "true")
    expect(playground).to_be_visible()
    expect(operators).to_be_hidden()
    assert_controls_are_named(playground)

    # Arrow keys move between the tabs and show only the selected panel.
    console.tab("Playground").focus()
    page.keyboard.press("ArrowRight")
    expect(console.tab("Operators")).to_be_focused()
    expect(console.tab("Operators")).to_have_attribute("aria-selected", "true")
    expect(operators).to_be_visible()
    expect(playground).to_be_hidden()
    assert_controls_are_named(operators)
    page.keyboard.press("ArrowLeft")
    expect(console.tab("Playground")).to_be_focused()
    expect(console.tab("Playground")).to_have_attribute("aria-selected", "true")
    expect(playground).to_be_visible()
    expect(operators).to_be_hidden()

    wrong = "sgw_wrong_" + uuid.uuid4().hex
    console.keep_secret(wrong)
    refused = requests.get(f"{stack.api}/v1/usage", headers=stack.headers(wrong), timeout=10)
    assert refused.status_code == 401
    console.guard.expect_status(401)
    sign_in = playground.get_by_role("form", name="App sign-in")
    sign_in.get_by_label("App key").fill(wrong)
    sign_in.get_by_role("button", name="Sign in").click()
    expect(playground.get_by_role("alert")).to_contain_text(api_error_message(refused))
    expect(sign_in).to_be_visible()
    expect(playground.get_by_role("form", name="New video")).to_be_hidden()

    # The key is typed and submitted from the keyboard alone.
    sign_in.get_by_label("App key").fill("")
    sign_in.get_by_label("App key").focus()
    page.keyboard.type(stack.dev_key)
    page.keyboard.press("Enter")
    expect(playground.get_by_text(f"Signed in with {stack.dev_key[:4]}…")).to_be_visible()
    expect(playground.get_by_role("alert")).to_have_count(0)

    form = playground.get_by_role("form", name="New video")
    tab_to(page, form.get_by_label("Prompt", exact=True))
    page.keyboard.type("typed from the keyboard")
    expect(form.get_by_label("Prompt", exact=True)).to_have_value("typed from the keyboard")
    tab_to(page, form.get_by_role("button", name="Generate"))
    assert_controls_are_named(playground)

    assert page.evaluate("sessionStorage.getItem('vgw.appKey')") == stack.dev_key
    console.finish("playground-signed-in")

    # Signing out forgets the key.
    playground.get_by_role("button", name="Sign out").click()
    expect(playground.get_by_role("form", name="App sign-in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('vgw.appKey')") is None


def tab_to(page: Page, target: Locator, presses: int = 80) -> None:
    """Press Tab from the top of the page until `target` has focus; fail if it never does."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.evaluate("window.scrollTo(0, 0)")
    for _ in range(presses):
        page.keyboard.press("Tab")
        if target.evaluate("(element) => element === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {target}")


def test_the_playground_fits_a_phone(stack: RunningStack, phone_console: ConsolePage) -> None:
    app = own_app(stack, "phone")
    phone_console.keep_secret(app.api_key)
    phone_console.open()
    phone_console.sign_in_app(app.api_key)
    playground = phone_console.panel("Playground")
    expect(playground.get_by_role("region", name="Quota")).to_contain_text("Hour: 0 / ")
    inner_width = phone_console.page.evaluate("window.innerWidth")
    assert inner_width == 375
    scroll_width = phone_console.page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= inner_width, f"the page scrolls sideways at 375 px: {scroll_width} px wide"
    phone_console.finish("playground-phone")


def test_without_its_script_the_page_never_submits_a_key(browser: Browser, stack: RunningStack) -> None:
    # With JavaScript off (or app.js failing to load) the sign-in forms are plain HTML: their
    # buttons ship disabled, so pressing Enter in the key field sends nothing anywhere.
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sent: list[str] = []
        page.on("request", lambda request: sent.append(f"{request.method} {request.url} {request.post_data}"))
        page.goto(f"{stack.api}/console")
        key = f"sgw_typed_but_never_sent_{uuid.uuid4().hex}"
        field = page.get_by_label("App key")
        field.fill(key)
        expect(page.get_by_role("button", name="Sign in").first).to_be_disabled()
        field.press("Enter")
        page.wait_for_timeout(500)
        assert page.url == f"{stack.api}/console"
        assert not [line for line in sent if key in line]
    finally:
        context.close()


def test_a_running_video_shows_when_it_will_be_ready(stack: RunningStack, console: ConsolePage) -> None:
    """The Playground reads `estimated_completion_at`. The gateway's answer is replaced in the
    browser (injected): a real job shows an estimate only for the few seconds the simulator's
    jobs run (tests/e2e/test_learned_eta.py shows the gateway giving it), too short to read the
    page reliably. Everything else is the real page against the real stack."""
    app = own_app(stack, "eta")
    console.keep_secret(app.api_key)
    console.open()
    console.sign_in_app(app.api_key)
    created = stack.client.create_video(app.api_key, {"prompt": "a kite over the dunes"})
    assert created.status_code == 202, created.text
    video = dict(created.json())
    ready_at = int(time.time()) + 95
    running = {**video, "status": "in_progress", "progress": 30, "estimated_completion_at": ready_at}

    def answer(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="application/json",
            headers={"Retry-After": "60", "openai-poll-after-ms": "60000"},
            body=json.dumps(running),
        )

    console.page.route(f"{stack.api}/v1/videos/{video['id']}", answer)
    console.page.evaluate("(id) => import('/api/console/video.js').then((m) => m.openVideo(id))", video["id"])
    status = console.panel("Playground").get_by_role("region", name="Current video").get_by_role("status")
    expect(status).to_contain_text(re.compile(r"ready in about (9[0-5]|8\d) s"))
    expect(status).to_contain_text("in_progress · 30%")
    console.page.unroute(f"{stack.api}/v1/videos/{video['id']}")
    stack.client.wait_finished(app.api_key, video["id"])
    console.finish("playground-eta")
