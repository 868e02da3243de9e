"""Reviewing: a paper's text, the review ensemble and meta-review, and review-bench, which
measures a reviewer against human decisions."""
