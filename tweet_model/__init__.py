"""What a logged MLflow model carries: tweet cleaning, the serving runtimes and the pyfunc.

It imports nothing else of the project, so the model it is logged with runs wherever MLflow does.
"""
