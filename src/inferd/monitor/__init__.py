"""What serving leaves to watch: Prometheus metrics, the prediction log (with the actions
stage 6 decided), and feedback that ground-truths logged predictions.

    metrics.py    request, stage, batch, queue, decision and action metrics
    recording.py  a request's outcomes → prediction-log rows and outbox actions
    feedback.py   checking a ground-truth value against the model's task
"""
