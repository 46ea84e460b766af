"""Model-provider streams into a run: one module per provider SDK, each an optional extra."""
