"""The Operators panel in a real browser: sign in with the admin key, create an app, change its plan,
rotate its key; the new key works and the old one is refused, through the API and in the Playground."""

from __future__ import annotations

import re
import uuid

import requests
from playwright.sync_api import Locator, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.browser.conftest import ConsolePage, api_error_message, assert_controls_are_named
from tests.conftest import RunningStack


def usage_status(stack: RunningStack, key: str) -> int:
    return requests.get(f"{stack.api}/v1/usage", headers=stack.headers(key), timeout=10).status_code


def sign_in_operator(console: ConsolePage, admin_key: str) -> Locator:
    operators = console.panel("Operators")
    sign_in = operators.get_by_role("form", name="Operator sign-in")
    sign_in.get_by_label("Admin key").fill(admin_key)
    sign_in.get_by_role("button", name="Sign in").click()
    return operators


def manage_button(console: ConsolePage, operators: Locator, name: str) -> Locator:
    """The app's "Manage <name>" button, paging on through the Apps table until it shows (a new app
    is listed first, newest first, once the table has reloaded after the create)."""
    apps = operators.get_by_role("table", name="Apps")
    button = apps.get_by_role("button", name=f"Manage {name}", exact=True)
    next_page = operators.get_by_role("button", name="Next page")
    try:
        button.wait_for(timeout=5_000)
    except PlaywrightTimeoutError:
        for _ in range(50):
            assert next_page.is_enabled(), f"no 'Manage {name}' on any page of the Apps table"
            with console.page.expect_response(lambda r: "/v1/manage/apps?" in r.url):
                next_page.click()
            if button.count() == 1:
                break
    return button


def test_an_operator_creates_an_app_changes_its_plan_and_rotates_its_key(
    stack: RunningStack, console: ConsolePage
) -> None:
    console.keep_secret(stack.admin_key)
    console.open()
    console.tab("Operators").click()
    operators = console.panel("Operators")

    # A wrong admin key: the API's own message, and still signed out.
    wrong = "wrong-admin-" + uuid.uuid4().hex
    console.keep_secret(wrong)
    refused = requests.get(f"{stack.api}/v1/manage/apps", headers={"x-admin-key": wrong}, timeout=10)
    assert refused.status_code == 401
    console.guard.expect_status(401)
    sign_in_operator(console, wrong)
    expect(operators.get_by_role("alert")).to_contain_text(api_error_message(refused))
    expect(operators.get_by_role("form", name="Create app")).to_be_hidden()

    sign_in_operator(console, stack.admin_key)
    expect(operators.get_by_role("button", name="Sign out")).to_be_visible()
    expect(operators.get_by_role("alert")).to_have_count(0)
    assert console.page.evaluate("sessionStorage.getItem('vgw.adminKey')") == stack.admin_key
    console.assert_secrets_kept()

    name = f"browser-{uuid.uuid4()}"
    create = operators.get_by_role("form", name="Create app")
    expect(create.get_by_label("Plan")).to_have_value("pro")
    create.get_by_label("App name").fill(name)
    create.get_by_label("Plan").select_option("pro")
    create.get_by_role("button", name="Create app").click()

    secrets = operators.get_by_role("region", name="New app secrets")
    api_key_field = secrets.get_by_label("API key", exact=True)
    expect(api_key_field).to_have_value(re.compile(r"^\S{20,}$"))
    expect(api_key_field).not_to_be_editable()
    expect(secrets.get_by_label("Webhook secret", exact=True)).not_to_be_editable()
    expect(secrets).to_contain_text("once")
    assert_controls_are_named(operators)
    old_key = api_key_field.input_value()
    webhook_secret = secrets.get_by_label("Webhook secret", exact=True).input_value()
    assert webhook_secret
    assert webhook_secret != old_key

    # The key shown is the app's: it answers /v1/usage as a pro app.
    usage = requests.get(f"{stack.api}/v1/usage", headers=stack.headers(old_key), timeout=10)
    assert usage.status_code == 200, usage.text
    assert usage.json()["plan"] == "pro"

    console.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.origin)
    secrets.get_by_role("button", name="Copy API key").click()
    assert console.page.evaluate("navigator.clipboard.readText()") == old_key
    console.page.evaluate("navigator.clipboard.writeText('')")

    # "Done" takes both secrets out of the page.
    secrets.get_by_role("button", name="Done").click()
    expect(secrets).to_have_count(0)
    console.keep_secret(old_key)
    console.keep_secret(webhook_secret)
    console.assert_secrets_kept()

    manage_button(console, operators, name).click()
    details = operators.get_by_role("region", name="App details")
    expect(details.get_by_role("heading", name=name)).to_be_visible()
    listed = stack.client.manage("GET", "/apps", params={"limit": "100"}).json()["data"]
    app_id = next(app["id"] for app in listed if app["name"] == name)
    expect(details).to_contain_text(app_id)
    expect(details).to_contain_text("pro")
    # Its spend per UTC window (no PLAN_BUDGETS in this stack: recorded, no budget).
    expect(details).to_contain_text("0.00 USD spent, 0.00 USD reserved; no budget")

    details.get_by_label("New plan").select_option("business")
    details.get_by_role("button", name="Change plan").click()
    expect(details.get_by_role("status")).to_have_text("Plan changed to business")
    read = stack.client.manage("GET", f"/apps/{app_id}")
    assert read.status_code == 200, read.text
    assert read.json()["plan"] == "business"

    details.get_by_role("button", name="Rotate key").click()
    new_key_field = details.get_by_label("New API key", exact=True)
    expect(new_key_field).to_have_value(re.compile(r"^\S{20,}$"))
    expect(new_key_field).not_to_be_editable()
    assert_controls_are_named(operators)
    assert [d for d in console.guard.dialogs if d.startswith("confirm:")], "Rotate key asked no confirm()"
    new_key = new_key_field.input_value()
    assert new_key != old_key
    # The old key is refused from now on; the new one works, with the plan just set.
    assert usage_status(stack, old_key) == 401
    new_usage = requests.get(f"{stack.api}/v1/usage", headers=stack.headers(new_key), timeout=10)
    assert new_usage.status_code == 200, new_usage.text
    assert new_usage.json()["plan"] == "business"
    limits = new_usage.json()["limits"]
    expect(details).to_contain_text(f"Hour: 0 / {limits['hour']} used")
    expect(details).to_contain_text(f"Day: 0 / {limits['day']} used")
    console.screenshot("operators")

    # The same in the browser: the Playground refuses the old key and signs in with the new one.
    console.tab("Playground").click()
    playground = console.panel("Playground")
    sign_in = playground.get_by_role("form", name="App sign-in")
    refused = requests.get(f"{stack.api}/v1/usage", headers=stack.headers(old_key), timeout=10)
    sign_in.get_by_label("App key").fill(old_key)
    sign_in.get_by_role("button", name="Sign in").click()
    expect(playground.get_by_role("alert")).to_contain_text(api_error_message(refused))
    expect(playground.get_by_role("form", name="New video")).to_be_hidden()
    console.sign_in_app(new_key)
    expect(playground.get_by_role("region", name="Quota")).to_contain_text(f"Hour: 0 / {limits['hour']} used")
    console.finish("operators-playground-new-key")


def test_operators_see_storage_health_and_recent_failures(stack: RunningStack, console: ConsolePage) -> None:
    # A real failure first: the simulator fails a job whose prompt carries `#sim:fail`.
    app = stack.client.create_app("pro", name=f"browser failures {uuid.uuid4().hex[:8]}")
    created = stack.client.create_video(app.api_key, {"prompt": "A doomed scene #sim:fail", "seconds": "4"})
    assert created.status_code == 202, created.text
    failed = stack.client.wait_finished(app.api_key, created.json()["id"])
    assert failed["status"] == "failed"

    console.keep_secret(stack.admin_key)
    console.open()
    console.tab("Operators").click()
    operators = sign_in_operator(console, stack.admin_key)
    expect(operators.get_by_text(re.compile(r"^Storage: ok \(\d+ ms\)$"))).to_be_visible()
    failures = operators.get_by_role("table", name="Recent failures")
    expect(failures.get_by_role("columnheader")).to_have_text(
        ["When", "App", "Video", "Model", "Provider", "Code", "Message"]
    )
    answered = stack.client.manage("GET", "/failures", params={"limit": "50"})
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert failed["id"] in [item["id"] for item in body["data"]]
    # The page's own read right after this one, so both see the same failures.
    with console.page.expect_response(lambda r: "/v1/manage/failures?" in r.url):
        operators.get_by_role("button", name="Refresh failures").click()
    rows = failures.locator("tbody").get_by_role("row")
    # One row per failure the API lists (the page asks for the same window), newest first.
    expect(rows).to_have_count(len(body["data"]))
    for index, failure in enumerate(body["data"]):
        expect(rows.nth(index)).to_contain_text(failure["id"])
    ours = rows.filter(has_text=failed["id"])
    expect(ours).to_contain_text(app.id)
    expect(ours).to_contain_text(failed["error"]["code"])
    expect(ours).to_contain_text(failed["error"]["message"])
    for provider, count in body["counts"]["by_provider"].items():
        expect(operators).to_contain_text(f"{provider} → {count}")
    console.finish("operators-health")
