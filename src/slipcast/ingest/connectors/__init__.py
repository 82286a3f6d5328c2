"""Live trackers to the canonical store: incremental sync over their REST APIs."""
