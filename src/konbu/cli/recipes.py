"""`konbu recipes`: the tutorials' experiments, with the figure each one reported.

    konbu recipes                 the list
    konbu train --recipe chollet  run one (flags override its settings)
"""

from rich.table import Table

from ._app import command, console


def _length(settings):
    from ..train import TrainConfig

    if settings.get("steps"):
        return f"{settings['steps']:,} steps"
    return f"{settings.get('epochs', TrainConfig().epochs)} epochs"   # a recipe without epochs trains the default


@command()
def recipes():
    """List the recipes (konbu train --recipe NAME) and what their tutorials reported."""
    from ..train.recipes import list_recipes

    table = Table(title="recipes: konbu train --recipe NAME (flags override a recipe's settings)")
    for column in ("recipe", "model", "dataset", "length", "reported", "what"):
        table.add_column(column, overflow="fold")
    for recipe in list_recipes():
        settings = recipe.settings
        accuracy = recipe.reported.get("accuracy")
        reported = f"{accuracy * 100:g}%" if accuracy is not None else "-"
        what = recipe.description
        if recipe.variants:
            what += f" (variants: {', '.join(recipe.variants)})"
        table.add_row(recipe.name, settings.get("model", ""), settings.get("dataset", ""), _length(settings),
                      reported, what)
    console.print(table)
