"""The `vgw` commands: argument parsing, one function per command, and the output."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.client import ApiError, Client
from cli.progress import Progress, poll_wait, wait_until_final

DEFAULT_BASE_URL = "http://127.0.0.1:7071/api"
PLANS = ("free", "pro", "business")

Handler = Callable[[Client, argparse.Namespace], int]


def emit_json(body: Any) -> None:
    print(json.dumps(body, indent=2, sort_keys=False))


def video_line(video: dict[str, Any]) -> str:
    progress = f"{video.get('progress', 0)}%"
    fields = [
        str(video.get("id")),
        str(video.get("status")),
        progress,
        str(video.get("model")),
        f"{video.get('seconds')}s",
        str(video.get("size")),
    ]
    return "  ".join(fields)


def show_video(video: dict[str, Any]) -> None:
    for name in (
        "id",
        "status",
        "progress",
        "model",
        "seconds",
        "size",
        "prompt",
        "created_at",
        "completed_at",
        "expires_at",
        "queue_position",
        "remixed_from_video_id",
    ):
        value = video.get(name)
        if value is not None:
            print(f"{name + ':':<22} {value}")
    error = video.get("error")
    if isinstance(error, dict):
        print(f"{'error:':<22} {error.get('message')} ({error.get('code')})")
    cost = video.get("estimated_cost")
    if isinstance(cost, dict):
        print(f"{'estimated_cost:':<22} {cost.get('amount')} {cost.get('currency')}")


def failure_of(video: dict[str, Any]) -> ApiError:
    error = video.get("error") if isinstance(video.get("error"), dict) else {}
    assert isinstance(error, dict)
    message = str(error.get("message") or "the video could not be generated")
    return ApiError(f"video {video.get('id')} failed: {message}", str(error.get("code") or "video_failed"))


def wait_and_download(
    client: Client, args: argparse.Namespace, response_video: dict[str, Any], first_wait: float
) -> int:
    video_id = str(response_video["id"])
    progress = Progress(sys.stderr, video_id)
    progress.update(response_video)
    if response_video.get("status") in ("completed", "failed"):
        progress.close()
        video = response_video
    else:
        video = wait_until_final(lambda: client.request("GET", f"videos/{video_id}"), first_wait, progress)
    if video.get("status") == "failed":
        if args.json:
            emit_json(video)
        raise failure_of(video)
    destination = Path(args.output or f"{video_id}.mp4")
    size = client.download(video_id, destination)
    if args.json:
        emit_json(video)
    else:
        print(f"{video_id} completed: {size} bytes written to {destination}")
    return 0


def started(client: Client, args: argparse.Namespace, path: str, **kwargs: Any) -> int:
    response = client.request("POST", path, ok=(200, 201, 202), **kwargs)
    video = dict(response.json())
    if args.no_wait:
        if args.json:
            emit_json(video)
        else:
            print(video["id"])
        return 0
    return wait_and_download(client, args, video, poll_wait(response))


def cmd_create(client: Client, args: argparse.Namespace) -> int:
    fields: dict[str, str | bool] = {"prompt": args.prompt}
    for name in ("model", "seconds", "size", "negative_prompt", "person_generation"):
        value = getattr(args, name)
        if value is not None:
            fields[name] = str(value)
    if args.audio is not None:
        fields["generate_audio"] = args.audio
    if args.image is None:
        return started(client, args, "videos", json=fields)
    image = Path(args.image)
    try:
        data = image.read_bytes()
    except OSError as exc:
        raise ApiError(f"cannot read {image}: {exc.strerror}", "invalid_image_file") from None
    content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    files = {"input_reference": (image.name, data, content_type)}
    # Form fields are text: a flag goes as "true" / "false", which the API reads back.
    form = {name: str(value).lower() if isinstance(value, bool) else value for name, value in fields.items()}
    return started(client, args, "videos", data=form, files=files)


def cmd_remix(client: Client, args: argparse.Namespace) -> int:
    return started(client, args, f"videos/{args.id}/remix", json={"prompt": args.prompt})


def cmd_list(client: Client, args: argparse.Namespace) -> int:
    body = client.json("GET", "videos", params={"limit": str(args.limit)})
    if args.json:
        emit_json(body)
        return 0
    videos = body.get("data") or []
    if not videos:
        print("no videos")
    for video in videos:
        print(video_line(video))
    if body.get("has_more"):
        print(f"(more after {body.get('last_id')})")
    return 0


def cmd_get(client: Client, args: argparse.Namespace) -> int:
    video = client.json("GET", f"videos/{args.id}")
    if args.json:
        emit_json(video)
    else:
        show_video(video)
    return 0


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    destination = Path(args.output)
    size = client.download(args.id, destination, args.variant)
    if args.json:
        emit_json(
            {"id": args.id, "variant": args.variant or "video", "path": str(destination), "bytes": size}
        )
    else:
        print(f"{size} bytes written to {destination}")
    return 0


def cmd_delete(client: Client, args: argparse.Namespace) -> int:
    body = client.json("DELETE", f"videos/{args.id}")
    if args.json:
        emit_json(body)
    else:
        print(f"deleted {body.get('id', args.id)}")
    return 0


def cmd_usage(client: Client, args: argparse.Namespace) -> int:
    return show_usage(client.json("GET", "usage"), args)


def show_usage(body: dict[str, Any], args: argparse.Namespace) -> int:
    if args.json:
        emit_json(body)
        return 0
    print(f"plan: {body.get('plan')}  video: {'enabled' if body.get('video_enabled') else 'not included'}")
    for window in ("hour", "day"):
        limits, used, left = (body.get(k) or {} for k in ("limits", "used", "remaining"))
        print(f"{window:<5} used {used.get(window)} of {limits.get(window)}, {left.get(window)} left")
    budget = body.get("budget") or {}
    for window in ("day", "month"):
        totals = budget.get(window)
        if not totals:
            continue
        currency = budget.get("currency", "")
        limit = (
            "no budget"
            if totals["limit"] is None
            else f"{totals['remaining']:.2f} left of {totals['limit']:.2f}"
        )
        print(
            f"spend {window} {totals['start']}: {totals['spent']:.2f} {currency} spent, "
            f"{totals['reserved']:.2f} reserved, {limit}"
        )
    return 0


def cmd_models(client: Client, args: argparse.Namespace) -> int:
    body = client.json("GET", "models")
    if args.json:
        emit_json(body)
        return 0
    for model in body.get("data") or []:
        extras = [name for name in ("image_input", "remix") if model.get(name)]
        sizes = ",".join(model.get("sizes") or [])
        seconds = ",".join(str(s) for s in model.get("seconds") or [])
        print(
            f"{model.get('id')}  ({model.get('owned_by')})  sizes {sizes}  seconds {seconds}"
            + (f"  {' '.join(extras)}" if extras else "")
        )
    return 0


def show_app(app: dict[str, Any]) -> None:
    print(f"{app.get('id')}  {app.get('plan')}  {app.get('name')}")


def cmd_apps_create(client: Client, args: argparse.Namespace) -> int:
    body = client.json(
        "POST", "manage/apps", admin=True, ok=(200, 201), json={"name": args.name, "plan": args.plan}
    )
    if args.json:
        emit_json(body)
        return 0
    print(f"app:            {body.get('id')}  ({body.get('plan')}, {body.get('name')})")
    print(f"api key:        {body.get('api_key')}")
    print(f"webhook secret: {body.get('webhook_secret')}")
    print("Store both now: the gateway never shows them again.", file=sys.stderr)
    return 0


def cmd_apps_list(client: Client, args: argparse.Namespace) -> int:
    try:
        body = client.json("GET", "manage/apps", admin=True, params={"limit": str(args.limit)})
    except ApiError as exc:
        if exc.status in (404, 405) and exc.code != "invalid_admin_key":
            raise ApiError(
                f"this gateway cannot list apps (GET /v1/manage/apps answered HTTP {exc.status}: {exc.message})",
                "apps_list_unsupported",
                exc.status,
            ) from None
        raise
    if args.json:
        emit_json(body)
        return 0
    apps = body.get("data") or []
    if not apps:
        print("no apps")
    for app in apps:
        show_app(app)
    if body.get("has_more"):
        print(f"(more after {body.get('last_id')})")
    return 0


def cmd_apps_plan(client: Client, args: argparse.Namespace) -> int:
    body = client.json("PATCH", f"manage/apps/{args.id}", admin=True, json={"plan": args.plan})
    if args.json:
        emit_json(body)
    else:
        print(f"{body.get('id')} is now on plan {body.get('plan')}")
    return 0


def cmd_apps_rotate_key(client: Client, args: argparse.Namespace) -> int:
    body = client.json("POST", f"manage/apps/{args.id}/keys", admin=True)
    if args.json:
        emit_json(body)
        return 0
    print(f"api key: {body.get('api_key')}")
    print(
        "The old key no longer works. Store this one now: the gateway never shows it again.", file=sys.stderr
    )
    return 0


def cmd_apps_usage(client: Client, args: argparse.Namespace) -> int:
    return show_usage(client.json("GET", f"manage/apps/{args.id}/usage", admin=True), args)


def cmd_apps_failures(client: Client, args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    if args.hours is not None:
        params["since"] = str(int(time.time() - args.hours * 3600))
    body = client.json("GET", "manage/failures", admin=True, params=params)
    if args.json:
        emit_json(body)
        return 0
    counts = body.get("counts") or {}
    for heading in ("by_provider", "by_code"):
        found = counts.get(heading) or {}
        listed = ", ".join(f"{name} {count}" for name, count in sorted(found.items(), key=lambda kv: -kv[1]))
        print(f"{heading.replace('_', ' ')}: {listed or 'no failures'}")
    for item in body.get("data") or []:
        error = item.get("error") or {}
        print(
            f"{item.get('id')}  {item.get('app_id')}  {item.get('model')}@{item.get('provider')}  "
            f"{error.get('code')}: {error.get('message')}"
        )
    return 0


def page_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 100")
    return value


def common_options(defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before and after the command; only the top level sets their defaults."""
    parser = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--base-url",
        default=default(None),
        help=f"the gateway's API root (env VGW_BASE_URL; default {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--key", default=default(None), help="the app key (env VGW_API_KEY; prefer the variable)"
    )
    parser.add_argument(
        "--admin-key",
        default=default(None),
        help="the operator key for `apps` (env VGW_ADMIN_KEY; prefer the variable)",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="print the API's JSON")
    return parser


def build_parser() -> argparse.ArgumentParser:
    common = common_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="vgw",
        parents=[common_options(defaults=True)],
        description="Command line for the video generation gateway (OpenAI Videos API compatible).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: Handler,
        help_text: str,
        group: argparse._SubParsersAction[argparse.ArgumentParser] = commands,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def waiting(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-o", "--output", help="where to write the MP4 (default <id>.mp4)")
        sub.add_argument("--no-wait", action="store_true", help="print the new video's id and return at once")

    create = command("create", cmd_create, "make a video from a prompt, wait for it and download it")
    create.add_argument("prompt")
    create.add_argument("--model")
    create.add_argument("--seconds")
    create.add_argument("--size", help="WIDTHxHEIGHT, e.g. 720x1280")
    create.add_argument("--image", help="a JPEG, PNG or WebP file: the first frame to animate")
    # The per-request options; a model takes those `vgw models` lists under "options".
    create.add_argument("--negative-prompt", metavar="TEXT", help="what the video should not show")
    create.add_argument(
        "--audio", action=argparse.BooleanOptionalAction, help="with or without sound (default: the model's)"
    )
    create.add_argument(
        "--person-generation",
        choices=("allow_all", "allow_adult", "dont_allow"),
        help="whether people may appear",
    )
    waiting(create)

    remix = command("remix", cmd_remix, "make a new video from a completed one, with a new prompt")
    remix.add_argument("id")
    remix.add_argument("prompt")
    waiting(remix)

    listing = command("list", cmd_list, "list your videos, newest first")
    listing.add_argument("--limit", type=page_size, default=20, metavar="N", help="1 to 100 (default 20)")

    command("get", cmd_get, "show one video").add_argument("id")

    download = command("download", cmd_download, "download a completed video's file")
    download.add_argument("id")
    download.add_argument("-o", "--output", required=True)
    download.add_argument("--variant", choices=("video", "thumbnail"))

    command("delete", cmd_delete, "cancel a running video, or delete a finished one").add_argument("id")
    command("usage", cmd_usage, "your plan and what is left of your quota")
    command("models", cmd_models, "the models this gateway offers")

    apps = commands.add_parser("apps", help="operators: manage apps (needs the admin key)")
    app_commands = apps.add_subparsers(dest="apps_command", required=True, metavar="COMMAND")
    apps_create = command(
        "create", cmd_apps_create, "create an app; prints its key and webhook secret once", app_commands
    )
    apps_create.add_argument("name")
    apps_create.add_argument("--plan", choices=PLANS, required=True)
    apps_list = command("list", cmd_apps_list, "list the apps, newest first", app_commands)
    apps_list.add_argument("--limit", type=page_size, default=20, metavar="N", help="1 to 100 (default 20)")
    plan = command("plan", cmd_apps_plan, "change an app's plan", app_commands)
    plan.add_argument("id")
    plan.add_argument("plan", choices=PLANS)
    command(
        "rotate-key", cmd_apps_rotate_key, "give an app a new key (the old one stops working)", app_commands
    ).add_argument("id")
    command("usage", cmd_apps_usage, "an app's plan and quota use", app_commands).add_argument("id")
    failures = command(
        "failures", cmd_apps_failures, "recent failed videos across apps, by provider and code", app_commands
    )
    failures.add_argument("--limit", type=page_size, default=20, metavar="N", help="1 to 100 (default 20)")
    failures.add_argument("--hours", type=float, metavar="H", help="look back H hours (default 24)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    base_url = args.base_url or os.environ.get("VGW_BASE_URL") or DEFAULT_BASE_URL
    key = args.key or os.environ.get("VGW_API_KEY") or None
    admin_key = args.admin_key or os.environ.get("VGW_ADMIN_KEY") or None
    client = Client(base_url, key=key, admin_key=admin_key)
    handler: Handler = args.handler
    try:
        return handler(client, args)
    except ApiError as exc:
        print(f"error: {redact(exc.message, key, admin_key)} ({exc.code})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def redact(text: str, *secrets: str | None) -> str:
    """Belt and braces: no key given to the CLI is ever echoed, whatever a message holds."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
