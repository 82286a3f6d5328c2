"""Slipcast on real public data, side by side with the published results (``make eval-real``)."""
