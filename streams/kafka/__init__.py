"""Kafka adapters (confluent-kafka and aiokafka): producers, admin, consumers."""
