"""`mimicry models list` and `mimicry models prepare NAME`: the model registry and its cache."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="list known models; prepare packaged GGUF models")
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = models_sub.add_parser("list", help="registered and saved models")
    listing.set_defaults(handler=list_handler)
    prepare = models_sub.add_parser("prepare", help="build the safetensors cache of a GGUF model")
    prepare.add_argument("name", help="a registry name, e.g. smollm2-135m")
    prepare.add_argument("--force", action="store_true", help="rebuild the cache even if it exists")
    prepare.set_defaults(handler=prepare_handler)


def _mark(flag: bool) -> str:
    return "[green]yes[/green]" if flag else "[dim]no[/dim]"


def list_handler(args: argparse.Namespace) -> int:
    from rich.table import Table

    from mimicry.console import out
    from mimicry.models import MODELS, PackagedGGUF, aligned_models, is_prepared, prepared_info, saved_models
    from mimicry.paths import models_dir

    table = Table(title=f"models (cache: {models_dir()})")
    aligned = aligned_models()
    saved = {name: path for name, path in saved_models().items() if name not in aligned}
    table.add_column("name", no_wrap=True, min_width=max(map(len, [*MODELS.names(), *aligned, *saved])))
    table.add_column("source", overflow="fold")
    for col in ("params", "installed", "prepared"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    for name in MODELS.names():
        source = MODELS.get(name)
        params, installed, prepared, origin = source.params, "", "", source.kind
        if isinstance(source, PackagedGGUF):
            installed, prepared = _mark(source.is_installed()), _mark(is_prepared(name))
            packages = [p.package for p in source.parts]
            origin = f"pypi: {packages[0]}" + (f"..{len(packages)}" if len(packages) > 1 else "")
            if details := prepared_info(name):
                params = f"{details['parameters'] / 1e6:.1f}M"
        table.add_row(name, origin, params, installed, prepared, source.description)
    for name, path in aligned.items():
        table.add_row(name, "align artifact", "", "", _mark(True), str(path))
    for name, path in saved.items():
        if name not in MODELS:
            table.add_row(name, "saved", "", "", _mark(True), str(path))
    out.print(table)
    return 0


def prepare_handler(args: argparse.Namespace) -> int:
    from mimicry.console import out
    from mimicry.models import prepare_model, prepared_info

    path = prepare_model(args.name, force=args.force)
    details = prepared_info(args.name) or {}
    parameters = details.get("parameters")
    size = f", {parameters / 1e6:.1f}M parameters" if parameters else ""
    out.print(f"{args.name} is prepared at {path}{size}")
    return 0
