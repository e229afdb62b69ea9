"""The audit: rules over the model (closure, repository hygiene, housekeeping), bucket posture, deep
verification, the findings they produce, and the run that ties them together.
"""
