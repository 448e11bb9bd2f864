"""What a logged MLflow model carries: tweet cleaning, the serving runtimes and the pyfunc.

It imports nothing else of the project, so the model it is logged with runs wherever MLflow does.
"""

# The cut on a logged model's P(positive): each model is re-centred (pyfunc.recentre) so that the threshold
# chosen for it on validation data lands here, and every consumer (server, reports, comparisons) cuts at it.
DECISION_CUT = 0.5
