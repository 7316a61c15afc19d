"""Detection: the scorer, rules and episodes that turn connection records into alerts."""
