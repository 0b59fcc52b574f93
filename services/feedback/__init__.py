"""Feedback: keeps served outputs for rating (ratings, raters and reward functions come with the feedback issue)."""
