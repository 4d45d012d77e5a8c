"""CLI command groups, one module per area; ``workbench.cli`` composes them."""
