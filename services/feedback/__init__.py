"""Feedback: served outputs kept for rating, ratings and raters, reward functions and scoring, data rights."""
