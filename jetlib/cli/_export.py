"""``jetlib export weaver`` and ``jetlib export cmssw``."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    export = typer.Typer(help="Write a store's inputs, standardisation and weights for other tools.", no_args_is_help=True)
    app.add_typer(export, name="export")

    def _blocks(blocks: str | None) -> list[str] | None:
        if blocks is None:
            return None
        names = [b.strip() for b in blocks.split(",") if b.strip()]
        if not names:
            typer.echo(f"error: --blocks {blocks!r} names no block; give e.g. 'pf,sv,jet', or leave it out for all", err=True)
            raise typer.Exit(2)
        return names

    def _emit(text: str, output: Path | None) -> None:
        """``text`` on stdout, or into ``output`` (written whole or not at all: a failed export
        leaves no empty file behind, as a shell redirect does)."""
        if output is None:
            typer.echo(text, nl=False)
            return
        from jetlib.store.store import write_text_atomic

        try:
            write_text_atomic(output, text)
        except OSError as err:
            typer.echo(f"error: cannot write {output}: {err}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"wrote {output}", err=True)

    output_option = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout (nothing is written if the export fails).")

    @export.command()
    def weaver(
        store: Path = typer.Argument(..., metavar="STORE", help="Store folder (Parquet shards: skim with --format parquet)."),
        weights: str = typer.Option("flat", help="Stored sampling weights to include; 'none' for no weights section."),
        standardize: bool = typer.Option(True, help="Include the stored standardisation (jetlib stats)."),
        blocks: str = typer.Option(None, help="Blocks to export, e.g. 'pf,sv,jet' (default: all)."),
        unpad: bool = typer.Option(True, "--unpad/--no-unpad", help="Read node features as jagged variables so that "
                                   "weaver pads with 0 after standardising, as the Reader does (its loader ~30% slower); "
                                   "--no-unpad standardises the padding too."),  # fmt: skip
        output: Path = output_option,
    ) -> None:
        """weaver-core data config (YAML) of a Parquet store: `jetlib export weaver store_pq/ -o data.yaml`."""
        from jetlib.errors import StoreError
        from jetlib.export import dump_yaml, weaver_config

        try:
            cfg = weaver_config(store, weights=None if weights == "none" else weights,
                                standardize=standardize, blocks=_blocks(blocks), unpad=unpad)  # fmt: skip
        except StoreError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        _emit(dump_yaml(cfg), output)

    @export.command()
    def cmssw(
        store: Path = typer.Argument(..., metavar="STORE", help="Store folder."),
        blocks: str = typer.Option(None, help="Blocks to export, e.g. 'pf,sv,jet' (default: all)."),
        output: Path = output_option,
    ) -> None:
        """CMSSW ONNX preprocess.json: `jetlib export cmssw store/ -o preprocess.json` (stdout without -o)."""
        import json

        from jetlib.errors import StoreError
        from jetlib.export import cmssw_preprocess, wrapped_blocks
        from jetlib.store import Store

        try:
            s = Store(store)
            out = cmssw_preprocess(s, blocks=_blocks(blocks))
            wrapped = wrapped_blocks(s, _blocks(blocks))
        except StoreError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        if wrapped:
            typer.echo(f"warning: block(s) {', '.join(wrapped)} were skimmed with `padding: wrap`, but CMSSW's preprocessing "
                       "pads with 0 (`pad`): the tagger will see zeros where it was trained on copies of real nodes; skim "
                       "with `padding: zero` for a tagger to run in CMSSW", err=True)  # fmt: skip
        _emit(json.dumps(out, indent=2) + "\n", output)
