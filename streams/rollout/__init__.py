"""Policy rollout: canary gates over shadow evaluations, and what they decide.

``gates`` judges one window of observations (and the history gate judges a
simulation); ``controller`` turns a sequence of judgements into hold, rollback
or promote. Both are pure; the worker that feeds them and publishes their
decisions lives with the other workers.
"""
