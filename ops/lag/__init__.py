"""Consumer lag: offsets, seconds and a Burrow-style status per partition.

``status`` and ``age`` are pure; ``kafka_offsets`` and ``postgres_checkpoints``
read the broker and the projector checkpoints; ``monitor`` samples them and
feeds the evaluator; ``exporter`` publishes the result as Prometheus metrics.
"""
