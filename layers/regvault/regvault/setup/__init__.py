"""Setup: the Setup state machine's steps (preflight, bucket, secrets, identity, association, launch) and
the custom resource that starts it and answers CloudFormation.
"""
