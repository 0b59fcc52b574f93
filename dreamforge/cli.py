"""The `dreamforge` command: start the platform and manage it from a terminal.

    dreamforge up                                   # the whole platform, Ctrl-C stops it
    dreamforge sample photo.png                     # an image the default model knows, with its truth
    dreamforge analyze photo.png query "How many circles?" [--model shapes@staging] [--stream]
    dreamforge keys create --tenant acme --scope app
    dreamforge models list | promote NAME VERSION | rollback NAME
    dreamforge train start MODEL --method grpo --reward-function rf_... | status [JOB] | cancel JOB
    dreamforge model build --out models/default       # train the default VLM from scratch

Management commands call the gateway's REST API through the SDK (`client.py`)
with the key from --api-key, $DREAMFORGE_API_KEY or $DREAMFORGE_HOME/admin-key.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import click

from dreamforge.client import DreamForge, DreamForgeError
from dreamforge.limits import MAX_TOKENS
from dreamforge.settings import PlatformSettings
from dreamforge.supervisor import Platform, PlatformError, run_until_signal

SCOPES = ("app", "rater", "ml", "finance", "admin")


def _settings() -> PlatformSettings:
    return PlatformSettings()


def _client(ctx: click.Context) -> DreamForge:
    settings = _settings()
    key = ctx.obj.get("api_key") or os.environ.get("DREAMFORGE_API_KEY")
    key_file = settings.home / "admin-key"
    if not key and key_file.exists():
        key = key_file.read_text().strip()
    if not key:
        raise click.UsageError(f"no API key: pass --api-key, set DREAMFORGE_API_KEY, or run `dreamforge up` "
                               f"first (it writes {key_file})")
    url = ctx.obj.get("url") or os.environ.get("DREAMFORGE_URL") or \
        f"http://{settings.host}:{settings.gateway_http_port}"
    return DreamForge(api_key=key, base_url=url)


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _run(ctx: click.Context, fn: Any) -> None:
    """Call the API and turn its errors into a one-line message and exit code 1."""
    try:
        with _client(ctx) as client:
            result = fn(client)
    except DreamForgeError as exc:
        raise click.ClickException(f"{exc.status} {exc.code}: {exc.message}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the gateway: {exc}") from None
    if result is not None:
        _print(result)


@click.group()
@click.option("--api-key", envvar="DREAMFORGE_API_KEY", default=None, help="API key (default: the admin key file)")
@click.option("--url", envvar="DREAMFORGE_URL", default=None, help="Gateway URL (default http://127.0.0.1:8080)")
@click.pass_context
def main(ctx: click.Context, api_key: str | None, url: str | None) -> None:
    """DreamForge: serve small vision-language models and improve them from feedback."""
    ctx.ensure_object(dict)
    ctx.obj.update(api_key=api_key, url=url)


@main.command()
def up() -> None:
    """Start NATS, Redis (when none is running) and the six services; Ctrl-C stops all."""
    platform = Platform(_settings(), say=lambda line: click.echo(line, err=False))
    try:
        asyncio.run(run_until_signal(platform))
    except PlatformError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


# -- tenants and keys ---------------------------------------------------------------
@main.group()
def tenants() -> None:
    """Tenants (admin key)."""


@tenants.command("create")
@click.argument("name")
@click.pass_context
def tenants_create(ctx: click.Context, name: str) -> None:
    _run(ctx, lambda c: c.create_tenant(name))


@tenants.command("list")
@click.pass_context
def tenants_list(ctx: click.Context) -> None:
    _run(ctx, lambda c: c.list_tenants())


@main.group()
def keys() -> None:
    """API keys (admin key). A new key is printed once and never again."""


def _tenant_id(client: DreamForge, tenant: str) -> str:
    """Accept a tenant id or name; create the tenant when the name is new."""
    for row in client.list_tenants():
        if tenant in (row["id"], row["name"]):
            return str(row["id"])
    created = client.create_tenant(tenant)
    click.echo(f"created tenant {created['name']} ({created['id']})", err=True)
    return str(created["id"])


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant id or name (a new name creates the tenant)")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES))
@click.option("--name", default="", help="A label for the key")
@click.pass_context
def keys_create(ctx: click.Context, tenant: str, scopes: tuple[str, ...], name: str) -> None:
    _run(ctx, lambda c: c.create_key(_tenant_id(c, tenant), list(scopes), name))


@keys.command("list")
@click.option("--tenant", default="", help="Only this tenant's keys (id)")
@click.pass_context
def keys_list(ctx: click.Context, tenant: str) -> None:
    _run(ctx, lambda c: c.list_keys(tenant))


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: str) -> None:
    _run(ctx, lambda c: c.revoke_key(key_id))


# -- models ---------------------------------------------------------------------------
@main.group()
def models() -> None:
    """Models, versions and aliases of the key's tenant."""


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    _run(ctx, lambda c: c.list_models())


@models.command("create")
@click.argument("name")
@click.option("--base", "base_checkpoint", default="", help="Path of the base checkpoint")
@click.pass_context
def models_create(ctx: click.Context, name: str, base_checkpoint: str) -> None:
    _run(ctx, lambda c: c.create_model(name, base_checkpoint=base_checkpoint))


@models.command("versions")
@click.argument("model")
@click.pass_context
def models_versions(ctx: click.Context, model: str) -> None:
    _run(ctx, lambda c: c.list_versions(model))


@main.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option("--alias", default="production", show_default=True)
@click.pass_context
def promote(ctx: click.Context, model: str, version: int, alias: str) -> None:
    """Point an alias of MODEL at VERSION."""
    _run(ctx, lambda c: c.promote(model, version, alias))


@main.command()
@click.argument("model")
@click.option("--alias", default="production", show_default=True)
@click.option("--to", "to_version", type=int, default=None, help="A named version (default: the previous one)")
@click.pass_context
def rollback(ctx: click.Context, model: str, alias: str, to_version: int | None) -> None:
    """Move an alias of MODEL back to its previous version (or --to a named one)."""
    _run(ctx, lambda c: c.rollback(model, alias, to_version))


@main.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option("--preview", "name", required=True, help="Preview name (callable as MODEL@NAME)")
@click.pass_context
def deploy(ctx: click.Context, model: str, version: int, name: str) -> None:
    """Open a preview deployment of a version."""
    _run(ctx, lambda c: c.create_preview(model, name, version))


# -- skills -----------------------------------------------------------------------------
@main.command()
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
@click.option("--split", type=click.Choice(["train", "validation", "test"]), default="test", show_default=True)
@click.option("--index", type=click.IntRange(min=0), default=3, show_default=True)
def sample(out: str, split: str, index: int) -> None:
    """Write an image of the default model's synthetic world to OUT (PNG), with its ground truth as JSON.

    The default model knows only this world of coloured shapes, so these are the images to try it on
    (`dreamforge analyze OUT query "what colour is the circle?"`). Deterministic: the same split and
    index always give the same image.
    """
    from dreamforge.world import get_sample

    shot = get_sample(split, index)
    try:
        shot.image.save(out, format="PNG")
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    _print({"image": out, "split": split, "index": index, "caption": shot.caption(),
            "objects": [{"name": o.name, "size": o.size, "box": [round(v, 4) for v in o.box],
                         "centre": [round(v, 4) for v in o.centre]} for o in shot.objects],
            "questions": [{"question": q.question, "answer": q.answer} for q in shot.questions()[:6]]})


SKILL_TEXT = {"query": "question", "detect": "object", "point": "object"}


@main.command()
@click.argument("image", type=click.File("rb"))
@click.argument("skill", type=click.Choice(["caption", "query", "detect", "point"]))
@click.argument("text", required=False)
@click.option("--model", "models", multiple=True,
              help="A model, name@version, name@alias or name@preview (default: the production model); "
                   "repeat it to compare versions side by side")
@click.option("--length", type=click.Choice(["short", "normal", "long"]), default="normal", show_default=True,
              help="Caption length")
@click.option("--stream", is_flag=True, help="Print a caption or answer as it is generated")
@click.option("--max-tokens", type=click.IntRange(1, MAX_TOKENS), default=None,
              help="caption, query: the most tokens to generate")
@click.option("--max-objects", type=click.IntRange(min=1), default=None,
              help="detect, point: the most boxes or points to return")
@click.pass_context
def analyze(ctx: click.Context, image: BinaryIO, skill: str, text: str | None, models: tuple[str, ...], length: str,
            stream: bool, max_tokens: int | None, max_objects: int | None) -> None:
    """Run SKILL on IMAGE (a JPEG/PNG/WebP file, or - for standard input).

    TEXT is the question for query and the object's name for detect and point. The answer comes as
    JSON with its request_id (to rate it by), the model version that served it and latency_ms.
    """
    field = SKILL_TEXT.get(skill)
    if field and not text:
        raise click.UsageError(f"{skill} needs TEXT, the {field}: e.g. dreamforge analyze photo.png {skill} "
                               + ('"How many circles?"' if skill == "query" else '"red circle"'))
    if not field and text:
        raise click.UsageError("caption takes no TEXT; use --length short|normal|long")
    if (stream or max_tokens) and skill not in ("caption", "query"):
        raise click.UsageError("--stream and --max-tokens are for caption and query")
    if max_objects and skill not in ("detect", "point"):
        raise click.UsageError("--max-objects is for detect and point")
    if len(models) > 1 and (stream or max_tokens or max_objects):
        raise click.UsageError("--stream, --max-tokens and --max-objects are for one model, not a comparison")
    data = image.read()
    if not data:
        raise click.BadParameter("the image is empty", param_hint="IMAGE")
    fields = {field: text} if field else {"length": length}

    def call(client: DreamForge) -> Any:
        if len(models) > 1:
            return client.compare(skill, data, list(models), **fields)
        model = models[0] if models else None
        if skill in ("detect", "point"):
            return getattr(client, skill)(data, text, model, max_objects=max_objects)
        answer = client.caption(data, length, model, stream, max_tokens) if skill == "caption" else \
            client.query(data, str(text), model, stream, max_tokens)
        if not stream:
            return answer
        for piece in answer:
            click.echo(piece, nl=False)
        click.echo()
        return None

    _run(ctx, call)


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def model(args: tuple[str, ...]) -> None:
    """Build or evaluate the default model: `dreamforge model build --out DIR`, `dreamforge model eval ...`."""
    from dreamforge.model.__main__ import main as model_main

    sys.exit(model_main(list(args), restart=True))


@main.command()
@click.option("--from", "start", default="", help="Start (ISO date), default: start of this month")
@click.option("--to", "end", default="", help="End, exclusive (ISO date)")
@click.option("--group-by", default="", help="Finance report grouped by e.g. tenant,model,day (scope finance)")
@click.option("--csv", "as_csv", is_flag=True, help="The report as RFC 4180 CSV")
@click.pass_context
def usage(ctx: click.Context, start: str, end: str, group_by: str, as_csv: bool) -> None:
    """Usage and cost of the key's tenant; with --group-by or --csv, the finance report."""
    if not group_by and not as_csv:
        _run(ctx, lambda c: c.usage(start, end))
        return
    if as_csv:
        _run(ctx, lambda c: click.echo(c.usage_report(group_by, start, end, csv=True), nl=False))
        return
    _run(ctx, lambda c: c.usage_report(group_by, start, end))


@main.group()
def train() -> None:
    """Training jobs: start ("retrain with this reward"), watch, cancel."""


@train.command("start")
@click.argument("model")
@click.option("--method", type=click.Choice(["grpo", "dpo", "sft"]), default="grpo", show_default=True)
@click.option("--reward-function", default="", help="A saved reward function's id, or @file.json (a definition)")
@click.option("--config", "config_json", default="{}", help="Job config as JSON, e.g. '{\"steps\": 30}'")
@click.option("--base-version", type=int, default=0, help="0 = the production version")
@click.pass_context
def train_start(ctx: click.Context, model: str, method: str, reward_function: str, config_json: str,
                base_version: int) -> None:
    """Queue a job on MODEL (a registry model name or id)."""
    reward: str | dict[str, Any] | None = reward_function or None
    if reward_function.startswith("@"):
        reward = json.loads(Path(reward_function[1:]).read_text())
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--config") from None
    _run(ctx, lambda c: c.train(model, method, reward, config=config, base_version=base_version))


@train.command("status")
@click.argument("job_id", required=False)
@click.pass_context
def train_status(ctx: click.Context, job_id: str | None) -> None:
    """One job (with its per-step history), or the tenant's jobs."""
    _run(ctx, lambda c: c.training_job(job_id) if job_id else c.training_jobs())


@train.command("cancel")
@click.argument("job_id")
@click.pass_context
def train_cancel(ctx: click.Context, job_id: str) -> None:
    """Cancel a queued or running job (nothing is registered)."""
    _run(ctx, lambda c: c.cancel_training_job(job_id))


@main.command()
@click.pass_context
def health(ctx: click.Context) -> None:
    """Health of every service and dependency."""
    _run(ctx, lambda c: c.health())


if __name__ == "__main__":  # pragma: no cover
    main(prog_name=Path(sys.argv[0]).name)
